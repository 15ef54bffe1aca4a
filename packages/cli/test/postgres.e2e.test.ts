import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// The store package's setup: HODEI_TEST_DATABASE_URL, else a throwaway embedded PostgreSQL.
import startPostgres from '../../store-postgres/test/global-setup';
import { createDatabase, type TestDatabase } from '../../store-postgres/test/helpers';
import { runCli, startCli } from './helpers/cli';

let adminUrl = '';
let stopPostgres: (() => Promise<void>) | undefined;
let databaseUrl = '';
let database: TestDatabase | undefined;
const NO_DATABASE_ENV = { HODEI_DATABASE_URL: undefined, DATABASE_URL: undefined };

beforeAll(async () => {
  const project = { provide: (_key: string, value: string) => (adminUrl = value) };
  stopPostgres = await startPostgres(project as never);
  database = await createDatabase(adminUrl, 'hodei_cli');
  databaseUrl = database.url;
}, 120_000);

afterAll(async () => {
  await database?.drop();
  await stopPostgres?.();
}, 60_000);

describe('hodei migrate', () => {
  it('applies the migrations and prints the version; again: already up to date', async () => {
    const first = await runCli(['migrate', '--database-url', databaseUrl], { env: NO_DATABASE_ENV });
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^schema version \d+ \(applied [\d, ]+\)\n$/);
    const again = await runCli(['migrate'], { env: { ...NO_DATABASE_ENV, HODEI_DATABASE_URL: databaseUrl } });
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^schema version \d+ \(already up to date\)\n$/);
  });

  it('without a URL: exit 2 naming --database-url', async () => {
    const result = await runCli(['migrate'], { env: NO_DATABASE_ENV });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^hodei: --database-url: /);
  });
});

describe('hodei server --store postgres', () => {
  it('runs a job end to end on PostgreSQL (URL from DATABASE_URL)', async () => {
    const server = startCli(['server', '--store', 'postgres', '--port', '0', '--max-workers', '2'], {
      env: { ...NO_DATABASE_ENV, DATABASE_URL: databaseUrl },
      timeoutMs: 60_000,
    });
    try {
      const address = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`server did not start: ${JSON.stringify(server.output())}`)), 20_000);
        server.child.stdout!.on('data', () => {
          const match = /^Hodei server listening on (\S+:\d+)$/m.exec(server.output().stdout);
          if (match) {
            clearTimeout(timer);
            resolve(match[1]!);
          }
        });
        void server.result.then((exit) => reject(new Error(`server exited early (${exit.code}): ${exit.stderr}`)));
      });
      const run = await runCli(['job', 'run', '--name', 'pg', '--', 'echo hello-postgres'], { server: address, timeoutMs: 30_000 });
      expect(run.stdout).toContain('hello-postgres');
      expect(run.code).toBe(0);
      const client = new pg.Client({ connectionString: databaseUrl });
      await client.connect();
      try {
        const { rows } = await client.query(`SELECT state FROM jobs WHERE spec->>'name' = 'pg'`);
        expect(rows).toEqual([{ state: 'SUCCEEDED' }]);
      } finally {
        await client.end();
      }
    } finally {
      server.child.kill('SIGTERM');
    }
    const exit = await server.result;
    expect(exit.code).toBe(0);
  }, 60_000);

  it.each([
    [[], /^hodei: --database-url: a postgres:\/\/ URL is required/],
    [['--database-url', 'not a url'], /^hodei: --database-url: not a valid URL/],
    [['--database-url', 'mysql://u:p@localhost/db'], /^hodei: --database-url: unsupported scheme "mysql:"/],
  ])('%j: exit 2 with a clear message', async (extra, message) => {
    const result = await runCli(['server', '--store', 'postgres', '--port', '0', ...extra], { env: NO_DATABASE_ENV });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('database unreachable: one line per attempt, then exit 1 after --database-wait', async () => {
    const result = await runCli(
      ['server', '--store', 'postgres', '--port', '0', '--database-url', 'postgres://u:p@127.0.0.1:1/db', '--database-wait', '1500ms'],
      { env: NO_DATABASE_ENV, timeoutMs: 20_000 },
    );
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^hodei server: database unreachable \(attempt 1\): .*ECONNREFUSED.*; retrying in /m);
    expect(result.stderr).toMatch(/^hodei: database unreachable after \d+ attempts over \ds: /m);
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(result.ms).toBeLessThan(10_000);
  });
});
