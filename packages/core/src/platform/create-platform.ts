import { HodeiClient } from '../client/hodei-client';
import { HodeiError, invalidArgument } from '../domain/errors';
import { resolveEngineConfig, type EngineConfig } from '../engine/engine-config';
import { JobController } from '../engine/job-controller';
import { parseRetention, RetentionSweeper } from '../engine/retention';
import { systemClock, type Clock } from '../ports/clock';
import { silentLogger, type Logger } from '../ports/logger';
import type { EngineObserver } from '../ports/observer';
import type { Provider } from '../ports/provider';
import type { Store } from '../ports/store';
import { startGrpcServer } from '../server/grpc-server';
import { MemoryStore } from '../store/memory-store';

/** Options of {@link createPlatform}: providers (required), store, listen address, logging, and any {@link EngineConfig} timing in milliseconds. Invalid values make `createPlatform` reject with `INVALID_ARGUMENT` naming the field. */
export interface PlatformOptions extends Partial<EngineConfig> {
  /** Where workers come from; at least one. */
  providers: Provider[];
  /** Defaults to a new MemoryStore. */
  store?: Store;
  /** Interface to listen on; default 127.0.0.1. */
  host?: string;
  /** Port to listen on; default 0 (any free port). */
  port?: number;
  /** Address workers use to reach this server; default host:port as bound (127.0.0.1 for 0.0.0.0). */
  advertiseAddress?: string;
  /** Where the engine logs (a pino logger fits); silent by default. */
  logger?: Logger;
  /** Time source; the system clock by default. */
  clock?: Clock;
  /** Metrics and tracing hooks (see `EngineObserver`). */
  observer?: EngineObserver;
  /**
   * How long finished jobs (SUCCEEDED, FAILED, CANCELLED, TIMED_OUT) and their log lines are kept, by
   * completion time: a duration such as `'7d'` or `'12h'` (or milliseconds), or `false` / `'off'` to keep
   * them forever. Default `'7d'`. Swept periodically in bounded batches; audit events are kept. Needs a store
   * with `deleteFinishedJobs` (MemoryStore and PostgresStore have it).
   */
  retention?: string | number | false;
}

/** A server and its engine embedded in this process, with a client connected to it. */
export interface Platform {
  /** host:port the gRPC server listens on. */
  readonly address: string;
  /** A client connected to this server; closed by `close()`. */
  readonly client: HodeiClient;
  /** The store in use; closed by `close()` only when the platform created it (the default MemoryStore). */
  readonly store: Store;
  /** The engine, for embedding code that needs more than the client (e.g. `controller.notifier`). */
  readonly controller: JobController;
  /** Stops workers and the server; idempotent. */
  close(): Promise<void>;
}

function validateOptions(options: PlatformOptions): void {
  if (typeof options !== 'object' || options === null) throw invalidArgument('options', 'must be an object');
  if (!Array.isArray(options.providers) || options.providers.length === 0) {
    throw invalidArgument('providers', 'give at least one provider, e.g. new ProcessProvider()');
  }
  const names = new Set<string>();
  for (const provider of options.providers) {
    if (provider?.specificationVersion !== 'v1') {
      throw invalidArgument('providers', `provider ${String(provider?.name)} implements an unknown specification version`);
    }
    if (names.has(provider.name)) throw invalidArgument('providers', `two providers are named "${provider.name}"`);
    names.add(provider.name);
  }
  const port = options.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw invalidArgument('port', `must be 0-65535, got ${port}`);
}

/**
 * Starts a Hodei server inside this process: gRPC server, scheduler and worker registry, with the
 * in-memory store unless another is given.
 *
 * @example
 * const hodei = await createPlatform({ providers: [new ProcessProvider({ maxWorkers: 4 })] });
 * const job = await hodei.client.queue({ name: 'build', command: 'echo hi | tr a-z A-Z' });
 * for await (const line of hodei.client.logs(job.id, { follow: true })) console.log(line.text);
 * await hodei.close();
 */
export async function createPlatform(options: PlatformOptions): Promise<Platform> {
  validateOptions(options);
  const config = resolveEngineConfig(options);
  const retentionMs = parseRetention(options.retention);
  const store = options.store ?? new MemoryStore();
  const host = options.host ?? '127.0.0.1';
  let advertised = options.advertiseAddress ?? '';
  const controller = new JobController({
    store,
    providers: options.providers,
    clock: options.clock ?? systemClock,
    logger: options.logger ?? silentLogger,
    config,
    serverAddress: () => advertised,
    ...(options.observer ? { observer: options.observer } : {}),
  });
  const server = await startGrpcServer(controller, host, options.port ?? 0);
  const reachableHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  const address = `${reachableHost}:${server.port}`;
  advertised ||= address;
  await controller.start();
  const logger = options.logger ?? silentLogger;
  const sweeper =
    retentionMs === undefined
      ? undefined
      : new RetentionSweeper({ store, clock: options.clock ?? systemClock, logger, maxAgeMs: retentionMs });
  sweeper?.start();
  const client = new HodeiClient({ address });
  let closing: Promise<void> | undefined;
  return {
    address,
    client,
    store,
    controller,
    close: () =>
      (closing ??= (async () => {
        await sweeper?.stop();
        await controller.stop();
        client.close();
        await server.shutdown();
        if (!options.store) await store.close();
      })()),
  };
}

export { HodeiError };
