import { createPlatform, formatSeconds, HodeiError, MemoryStore, parseDuration, type PlatformOptions, type Store } from '@hodei/core';
import { createPostgresStore, type PostgresStore } from '@hodei/store-postgres';
import type { Command } from 'commander';
import type { Context } from '../context';
import type { Io } from '../io';
import { collect, parseChoice, parseDurationFlag, parseIntegerFlag } from '../options';
import { createCliLogger, LOG_LEVELS, type LogLevel } from '../logging';
import { createPrometheusMetrics } from '../metrics/prometheus-metrics';
import { startMetricsServer } from '../metrics/metrics-server';
import { readPemFile, resolveAuthToken } from '../security-options';
import { bothObservers, engineEventsLog } from '../engine-log';
import { createServerProvider, PROVIDERS, type ProviderFlags } from './server-provider';

export { PROVIDERS };

export const STORES = ['memory', 'postgres'] as const;

/** How long running jobs may finish after SIGTERM/SIGINT before they are stopped, by default. */
export const DEFAULT_DRAIN_GRACE = '30s';

interface ServerFlags extends ProviderFlags {
  host: string;
  port: string;
  store: string;
  idleTimeout?: string;
  heartbeatTimeout?: string;
  prefetch?: string;
  databaseUrl?: string;
  databaseWait: string;
  verbose?: boolean;
  logLevel: string;
  metricsPort?: string;
  drainGrace: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  authToken?: string;
  retention: string;
}

/** `--tls-cert`, `--tls-key` and `--tls-ca` read and checked; undefined without TLS. */
export function resolveServerTls(flags: Pick<ServerFlags, 'tlsCert' | 'tlsKey' | 'tlsCa'>): PlatformOptions['tls'] {
  if (flags.tlsCert === undefined && flags.tlsKey === undefined) {
    if (flags.tlsCa !== undefined) throw new HodeiError('INVALID_ARGUMENT', 'needs --tls-cert and --tls-key', { field: '--tls-ca' });
    return undefined;
  }
  if (flags.tlsCert === undefined) throw new HodeiError('INVALID_ARGUMENT', 'is required with --tls-key', { field: '--tls-cert' });
  if (flags.tlsKey === undefined) throw new HodeiError('INVALID_ARGUMENT', 'is required with --tls-cert', { field: '--tls-key' });
  return {
    cert: readPemFile(flags.tlsCert, '--tls-cert', 'certificate'),
    key: readPemFile(flags.tlsKey, '--tls-key', 'private key'),
    ...(flags.tlsCa === undefined ? {} : { ca: readPemFile(flags.tlsCa, '--tls-ca', 'certificate') }),
  };
}

/** The log levels at which the engine's events (jobs queued, started, ended; workers started) are logged. */
const LOGS_ENGINE_EVENTS = new Set<LogLevel>(['trace', 'debug', 'info']);

/** The database URL: `--database-url`, else HODEI_DATABASE_URL, else DATABASE_URL. */
export function resolveDatabaseUrl(flag: string | undefined, io: Io): string {
  // An environment variable set but blank counts as unset (as HODEI_SERVER does): it must not hide the next one.
  const fromEnv = (name: string) => (io.env[name]?.trim() ? io.env[name] : undefined);
  const url = flag ?? fromEnv('HODEI_DATABASE_URL') ?? fromEnv('DATABASE_URL');
  if (url === undefined || url.trim() === '') {
    throw new HodeiError('INVALID_ARGUMENT', 'a postgres:// URL is required (or set HODEI_DATABASE_URL or DATABASE_URL)', {
      field: '--database-url',
    });
  }
  return url;
}

/** A PostgresStore for `url`; a malformed URL is reported against `--database-url`. */
export function openPostgresStore(url: string): PostgresStore {
  try {
    return createPostgresStore({ connectionString: url });
  } catch (error) {
    if (HodeiError.isInstance(error) && error.field === 'connectionString') {
      throw new HodeiError('INVALID_ARGUMENT', error.message.replace(/^connectionString: /, ''), {
        field: '--database-url',
        cause: error,
      });
    }
    throw error;
  }
}

/** SQLSTATE classes that waiting cannot fix: bad credentials (28), no such database (3D). */
function isPermanent(error: unknown): boolean {
  const code = (HodeiError.isInstance(error) ? (error.cause as { code?: unknown } | undefined)?.code : undefined) ?? '';
  return typeof code === 'string' && /^(28|3D)/.test(code);
}

function reasonOf(error: unknown): string {
  const cause = HodeiError.isInstance(error) ? error.cause : error;
  const message = cause instanceof Error && cause.message ? cause.message : error instanceof Error ? error.message : String(error);
  const code = (cause as { code?: unknown } | undefined)?.code;
  return (message || (typeof code === 'string' ? code : 'unknown error')).replace(/\s*\n\s*/g, ' ');
}

/**
 * Connects and applies migrations, retrying with backoff (0.25 s doubling to 5 s) and one stderr line per
 * failed attempt until `waitMs` has passed; then throws UNAVAILABLE. Resolves false if `stopped` fires first.
 */
export async function waitForDatabase(store: PostgresStore, io: Io, waitMs: number, stopped?: Promise<void>): Promise<boolean> {
  const started = Date.now();
  let delay = 250;
  let halted = false;
  void stopped?.then(() => (halted = true));
  for (let attempt = 1; ; attempt += 1) {
    try {
      await store.migrate();
      return true;
    } catch (error) {
      const reason = reasonOf(error);
      if (isPermanent(error)) {
        throw new HodeiError('UNAVAILABLE', `cannot use the database: ${reason}`, { cause: error });
      }
      const left = started + waitMs - Date.now();
      if (left <= 0) {
        throw new HodeiError(
          'UNAVAILABLE',
          `database unreachable after ${attempt} attempts over ${Math.round((Date.now() - started) / 1000)}s: ${reason} (check --database-url; --database-wait sets how long to wait)`,
          { cause: error },
        );
      }
      const pause = Math.min(delay, left);
      io.stderr.write(`hodei server: database unreachable (attempt ${attempt}): ${reason}; retrying in ${(pause / 1000).toFixed(1)}s\n`);
      await Promise.race([new Promise((resolve) => setTimeout(resolve, pause)), stopped ?? new Promise(() => undefined)]);
      if (halted) return false;
      delay = Math.min(delay * 2, 5_000);
    }
  }
}


/** `hodei server`: a Hodei server with local worker processes, until SIGINT or SIGTERM. */
export function registerServer(program: Command, ctx: Context): void {
  program
    .command('server')
    .description('run a Hodei server whose workers are local processes or Docker containers, until SIGINT/SIGTERM')
    .option('--host <host>', 'interface to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on; 0 picks a free one', '50051')
    .option('--store <store>', `where jobs are kept: ${STORES.join(', ')}`, 'memory')
    .option('--database-url <url>', 'with --store postgres: postgres://user:password@host:port/database (default: $HODEI_DATABASE_URL, then $DATABASE_URL)')
    .option('--database-wait <duration>', 'with --store postgres: keep retrying an unreachable database this long at start', '30s')
    .option('--provider <provider>', `where workers run: ${PROVIDERS.join(', ')}`, 'process')
    .option('--max-workers <n>', 'most workers at once (default: number of CPUs)')
    .option('--worker-label <KEY=VALUE>', 'a label every worker carries: jobs queued with --label KEY=VALUE run on them (repeatable)', collect)
    .option('--docker-image <image>', 'with --provider docker: the worker image (npm run docker:image builds hodei-worker:local)')
    .option('--docker-network <mode>', 'with --provider docker: container network mode', 'host')
    .option('--worker-memory <size>', 'with --provider docker: memory limit per worker, e.g. 512m')
    .option('--worker-cpus <n>', 'with --provider docker: CPUs per worker, e.g. 1 or 0.5')
    .option('--idle-timeout <duration>', 'stop a worker idle this long (default: 5m)')
    .option('--heartbeat-timeout <duration>', 'declare a silent worker lost after this long (default: 60s)')
    .option('--prefetch <n>', 'jobs each worker may hold beyond its slots, started as slots free (default: 0, off)')
    .option('--drain-grace <duration>', 'on SIGTERM/SIGINT, how long running jobs may finish before they are stopped (0: at once)', DEFAULT_DRAIN_GRACE)
    .option('--tls-cert <file>', 'serve TLS with this certificate (PEM; its subjectAltName must match the address workers and clients dial)')
    .option('--tls-key <file>', "with --tls-cert: the certificate's private key (PEM)")
    .option('--tls-ca <file>', 'with --tls-cert: the CA certificate workers are told to trust (default: the certificate itself, if self-signed)')
    .option('--auth-token <token>', 'require this bearer token from clients of the job API (default: $HODEI_AUTH_TOKEN, which keeps it out of `ps`; workers use their own tokens)')
    .option('--retention <duration>', "keep finished jobs and their log lines this long, then delete them ('off' keeps them)", '7d')
    .option('--metrics-port <port>', 'serve Prometheus metrics on http://HOST:PORT/metrics (0 picks a free port)')
    .option('--log-level <level>', `engine log level on stderr: ${LOG_LEVELS.join(', ')} (JSON lines unless stderr is a terminal)`, 'warn')
    .option('-v, --verbose', 'same as --log-level debug')
    .addHelpText(
      'after',
      `
Prints "Hodei server listening on HOST:PORT" (the port actually bound) on stdout once it serves.
SIGINT or SIGTERM drains: new jobs are refused (UNAVAILABLE, code DRAINING), queued jobs stay queued in the
store, running jobs get --drain-grace to finish; those still running then are stopped (process tree killed)
and re-queued if they have attempts left, else fail with reason SHUTDOWN. Then the workers stop and the
server exits 0. A second signal ends the grace at once (same clean stop, exit 0); a third exits 1 at once.

Examples:
  $ hodei server --max-workers 4
  $ hodei server --port 0 --idle-timeout 30s --metrics-port 9464
  $ hodei server --store postgres --database-url postgres://hodei:secret@localhost:5432/hodei
  $ hodei server --provider docker --docker-image hodei-worker:local --worker-memory 512m --worker-cpus 1
  $ HODEI_AUTH_TOKEN=s3cret hodei server --tls-cert server.pem --tls-key server-key.pem --tls-ca ca.pem`,
    )
    .action(async (flags: ServerFlags) => {
      parseChoice(flags.store, '--store', STORES);
      parseChoice(flags.provider, '--provider', PROVIDERS);
      const logLevel: LogLevel = flags.verbose ? 'debug' : parseChoice(flags.logLevel, '--log-level', LOG_LEVELS);
      const port = parseIntegerFlag(flags.port, '--port', 0, 65_535);
      const idleTimeoutMs = flags.idleTimeout === undefined ? undefined : parseDurationFlag(flags.idleTimeout, '--idle-timeout');
      const heartbeatTimeoutMs =
        flags.heartbeatTimeout === undefined ? undefined : parseDurationFlag(flags.heartbeatTimeout, '--heartbeat-timeout');
      const prefetch = flags.prefetch === undefined ? undefined : parseIntegerFlag(flags.prefetch, '--prefetch', 0, 100_000);
      if (flags.host.trim() === '') throw new HodeiError('INVALID_ARGUMENT', 'must not be empty', { field: '--host' });
      const { io } = ctx;
      const drainGraceMs = parseDuration(flags.drainGrace, '--drain-grace');
      const tls = resolveServerTls(flags);
      const authToken = resolveAuthToken(flags.authToken, io.env);
      const databaseWaitMs = parseDurationFlag(flags.databaseWait, '--database-wait');
      const retention = flags.retention === 'off' ? false : parseDurationFlag(flags.retention, '--retention');
      if (flags.databaseUrl !== undefined && flags.store !== 'postgres') {
        // Ignored, the jobs would live in memory and vanish with the server, though the user asked for a database.
        throw new HodeiError('INVALID_ARGUMENT', 'needs --store postgres (without it the server keeps its jobs in memory)', { field: '--database-url' });
      }
      const postgres = flags.store === 'postgres' ? openPostgresStore(resolveDatabaseUrl(flags.databaseUrl, io)) : undefined;
      const store: Store = postgres ?? new MemoryStore();
      const metricsPort = flags.metricsPort === undefined ? undefined : parseIntegerFlag(flags.metricsPort, '--metrics-port', 0, 65_535);
      const metrics = metricsPort === undefined ? undefined : createPrometheusMetrics(store);
      let provider;
      try {
        provider = await createServerProvider(flags);
      } catch (error) {
        await postgres?.close().catch(() => undefined);
        throw error;
      }

      // Subscribe before listening so a signal during start-up is not lost. The handler stays installed
      // after the shutdown (doing nothing) so a late signal cannot kill the process while it exits.
      // First signal: drain; second: end the grace now (running jobs are stopped); third: exit at once.
      let signalled: (() => void) | undefined;
      let signals = 0;
      let stopped = false;
      const stopRequested = new Promise<void>((resolve) => (signalled = resolve));
      const endGrace = new AbortController();
      const unsubscribe = io.onSignal(() => {
        if (stopped) return;
        signals += 1;
        if (signals === 1) signalled?.();
        else if (signals === 2) {
          io.stderr.write('hodei: second signal; stopping running jobs now (send again to exit at once)\n');
          endGrace.abort();
        } else {
          io.stderr.write('hodei: third signal; exiting without waiting for workers\n');
          // Exit now: the clean shutdown in progress is being abandoned on purpose.
          process.exit(1);
        }
      });
      let platform;
      try {
        if (postgres && !(await waitForDatabase(postgres, io, databaseWaitMs, stopRequested))) {
          unsubscribe();
          stopped = true;
          await postgres.close();
          return;
        }
        const logger = createCliLogger(io, logLevel, io.stderrIsTerminal ?? false);
        // At info or finer, what the engine does is logged too (jobs queued, started, ended; workers started).
        const observers = [...(metrics ? [metrics.observer] : []), ...(LOGS_ENGINE_EVENTS.has(logLevel) ? [engineEventsLog(logger)] : [])];
        platform = await createPlatform({
          store,
          ...(observers.length > 0 ? { observer: bothObservers(...observers) } : {}),
          providers: [provider],
          host: flags.host,
          port,
          ...(idleTimeoutMs === undefined ? {} : { idleTimeoutMs }),
          ...(heartbeatTimeoutMs === undefined ? {} : { heartbeatTimeoutMs }),
          ...(prefetch === undefined ? {} : { prefetch }),
          retention,
          logger,
          ...(tls ? { tls } : {}),
          ...(authToken ? { authToken } : {}),
        });
      } catch (error) {
        unsubscribe();
        await postgres?.close().catch(() => undefined);
        if (HodeiError.isInstance(error) && error.field === 'port') {
          const reason = /EADDRINUSE/.test(error.message)
            ? `${flags.host}:${port} is already in use (another server?); pick another --port, or 0 for any free port`
            : error.message;
          throw new HodeiError('INVALID_ARGUMENT', reason, { field: '--port', cause: error });
        }
        throw error;
      }
      // The metrics port first: a script that waits for the "listening" line must not see it for a server that
      // then exits because that port is taken.
      let metricsServer: Awaited<ReturnType<typeof startMetricsServer>> | undefined;
      if (metrics && metricsPort !== undefined) {
        try {
          metricsServer = await startMetricsServer(metrics.registry, flags.host, metricsPort);
        } catch (error) {
          unsubscribe();
          await platform.close();
          await postgres?.close();
          throw error;
        }
      }
      io.stdout.write(`Hodei server listening on ${platform.address}${tls ? ' (TLS)' : ''}\n`);
      if (metricsServer) io.stdout.write(`Metrics on http://${metricsServer.address}/metrics\n`);
      await stopRequested;
      io.stderr.write(
        `hodei: draining: new jobs are refused; running jobs have ${formatSeconds(drainGraceMs)}s to finish (send the signal again to stop them now)\n`,
      );
      const { drained } = await platform.stop({ graceMs: drainGraceMs, signal: endGrace.signal });
      io.stderr.write(drained ? 'hodei: drained; workers and server stopped\n' : 'hodei: stopped the jobs still running, then the workers and server\n');
      await metricsServer?.close(); // served until the end: the drain is worth watching
      await postgres?.close();
      stopped = true;
    });
}
