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
import { pemText, validateAuthToken } from '../server/pem';
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
  /**
   * Serve the gRPC port over TLS. `cert` and `key` are the server's certificate chain and private key (PEM);
   * `ca` (PEM) is what the workers this server starts and its own `client` trust, by default `cert` (right for a
   * self-signed certificate). The certificate must name the address workers and clients dial (e.g. IP:127.0.0.1).
   */
  tls?: {
    /** The server's certificate chain, PEM text (not a path). */
    cert: string | Buffer;
    /** Its private key, PEM text. */
    key: string | Buffer;
    /** The CA certificate workers and the embedded client trust, PEM text; default `cert`. */
    ca?: string | Buffer;
  };
  /**
   * Require `authorization: Bearer <authToken>` on every client API call (queue, get, list, cancel, watch,
   * logs); others get UNAUTHENTICATED. Workers authenticate with their own one-time and session tokens.
   */
  authToken?: string;
}

/** How `Platform.stop` drains. */
export interface StopOptions {
  /** How long running jobs may take to finish before they are stopped; default 0 (stop them at once). */
  graceMs?: number;
  /** Aborting it ends the grace period early (e.g. on a second SIGTERM). */
  signal?: AbortSignal;
}

/** What `Platform.stop` did. */
export interface StopResult {
  /** True when every running job finished within the grace period; false when some had to be stopped. */
  drained: boolean;
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
  /** Stops workers and the server at once (`stop()` with no grace); idempotent. */
  close(): Promise<void>;
  /**
   * Drains, then closes: new jobs are refused at once with `DRAINING` (gRPC UNAVAILABLE), queued jobs stay
   * QUEUED in the store, running jobs get `graceMs` to finish; those still running then are stopped (their
   * process trees killed) and re-queued when attempts remain, else they fail with reason `SHUTDOWN`; finally the
   * workers and the server stop. Idempotent: a later call (or `close()`) joins the first.
   */
  stop(options?: StopOptions): Promise<StopResult>;
}

/** The TLS material as PEM text, validated; `ca` defaults to the certificate. */
function resolveTls(tls: PlatformOptions['tls']): { cert: string; key: string; ca: string } | undefined {
  if (tls === undefined) return undefined;
  if (typeof tls !== 'object' || tls === null) throw invalidArgument('tls', 'must be { cert, key, ca? }');
  const cert = pemText(tls.cert, 'tls.cert', 'certificate');
  const key = pemText(tls.key, 'tls.key', 'private key');
  const ca = tls.ca === undefined ? cert : pemText(tls.ca, 'tls.ca', 'certificate');
  return { cert, key, ca };
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
  validateAuthToken(options.authToken, 'authToken');
  if (options.host !== undefined && (typeof options.host !== 'string' || options.host.trim() === '')) {
    throw invalidArgument('host', 'must be a host name or address to listen on, e.g. 127.0.0.1');
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
  const tls = resolveTls(options.tls);
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
    ...(tls ? { workerTlsCa: tls.ca } : {}),
  });
  const server = await startGrpcServer(controller, host, options.port ?? 0, {
    ...(tls ? { tls: { cert: Buffer.from(tls.cert), key: Buffer.from(tls.key) } } : {}),
    ...(options.authToken ? { authToken: options.authToken } : {}),
  });
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
  const client = new HodeiClient({
    address,
    ...(tls ? { tls: { ca: tls.ca } } : {}),
    ...(options.authToken ? { authToken: options.authToken } : {}),
  });
  let stopping: Promise<StopResult> | undefined;
  const stop = (stopOptions: StopOptions = {}): Promise<StopResult> => {
    const graceMs = stopOptions.graceMs ?? 0;
    if (typeof graceMs !== 'number' || !(graceMs >= 0)) {
      return Promise.reject(invalidArgument('graceMs', `must be a number of milliseconds, 0 or more, got ${String(graceMs)}`));
    }
    return (stopping ??= (async () => {
      await sweeper?.stop();
      const drained = await controller.drain({ graceMs, ...(stopOptions.signal ? { signal: stopOptions.signal } : {}) });
      await controller.stop();
      client.close();
      await server.shutdown();
      if (!options.store) await store.close();
      return { drained };
    })());
  };
  return {
    address,
    client,
    store,
    controller,
    stop,
    close: async () => {
      await stop();
    },
  };
}

export { HodeiError };
