import { createServer } from 'node:net';
import { HodeiError, JOB_STATES, packLogLineBatch, WORKER_STATES, type FailureReason, type LogStreamName } from '@hodei/core';
import { makeTestJob, makeTestWorker } from '@hodei/core/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresStore, migrate, PostgresStore } from '../src';
import { createTestDatabase, type TestDatabase } from './helpers';

// Compile-time exhaustive lists of the domain's string unions: adding a member breaks this file.
const FAILURE_REASONS: Record<FailureReason, true> = {
  EXIT_CODE: true,
  WORKER_LOST: true,
  FAILED_TO_START: true,
  PROVISIONING_FAILED: true,
  SHUTDOWN: true,
};
const LOG_STREAMS: Record<LogStreamName, true> = { stdout: true, stderr: true, system: true };

let database: TestDatabase;
let pool: pg.Pool;

beforeAll(async () => {
  database = await createTestDatabase();
  await migrate(database.url);
  pool = new pg.Pool({ connectionString: database.url, max: 2 });
});

afterAll(async () => {
  await pool?.end();
  await database?.drop();
});

/** The string literals a CHECK constraint allows, read back from the database. */
async function allowed(constraint: string): Promise<string[]> {
  const result = await pool.query<{ definition: string }>(
    `SELECT pg_get_constraintdef(oid) AS definition FROM pg_constraint WHERE conname = $1 AND connamespace = 'public'::regnamespace`,
    [constraint],
  );
  expect(result.rows).toHaveLength(1);
  return [...result.rows[0]!.definition.matchAll(/'([^']*)'/g)].map((match) => match[1]!).sort();
}

describe('schema', () => {
  it('allows exactly the domain job states', async () => {
    expect(await allowed('jobs_state_check')).toEqual([...JOB_STATES].sort());
  });

  it('allows exactly the domain worker states', async () => {
    expect(await allowed('workers_state_check')).toEqual([...WORKER_STATES].sort());
  });

  it('allows exactly the domain failure reasons and log streams', async () => {
    expect(await allowed('jobs_failure_reason_check')).toEqual(Object.keys(FAILURE_REASONS).sort());
    expect(await allowed('job_logs_stream_check')).toEqual(Object.keys(LOG_STREAMS).sort());
  });

  it('keeps the queue in its own table, in queue order, and a (job_id, seq) key on logs', async () => {
    const indexes = await pool.query<{ indexname: string; indexdef: string }>(
      `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'`,
    );
    const byName = new Map(indexes.rows.map((row) => [row.indexname, row.indexdef]));
    expect(byName.get('job_queue_order_idx')).toMatch(/^CREATE INDEX .* ON public\.job_queue USING btree \(priority DESC, created_at, insert_seq\)$/);
    expect(byName.get('job_claims_key_idx')).toMatch(/^CREATE INDEX .* ON public\.job_claims USING btree \(worker_id, assigned_at, id\)$/);
    expect(byName.get('job_logs_pkey')).toMatch(/\(job_id, seq\)/);
  });

  it('indexes jobs only on columns that never change, with room on each page, so that a job\'s updates are HOT', async () => {
    // An UPDATE that changes no indexed column and finds room on the row's page writes no index entry (a HOT
    // update): the claim, start, finish and log-count updates of a job then cost a fraction of the I/O.
    const indexed = await pool.query<{ column: string }>(
      `SELECT DISTINCT a.attname AS column FROM pg_index AS i
       JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
       WHERE i.indrelid = 'public.jobs'::regclass ORDER BY 1`,
    );
    expect(indexed.rows.map((row) => row.column)).toEqual(['created_at', 'id', 'insert_seq']);
    const predicates = await pool.query(`SELECT 1 FROM pg_index WHERE indrelid = 'public.jobs'::regclass AND (indpred IS NOT NULL OR indexprs IS NOT NULL)`);
    expect(predicates.rows).toEqual([]);
    const options = await pool.query<{ reloptions: string[] }>(`SELECT reloptions FROM pg_class WHERE oid = 'public.jobs'::regclass`);
    expect(options.rows[0]!.reloptions).toEqual(['fillfactor=30']);
  });

  it('finds audit events by correlation id through a hash index (no btree to keep sorted per event)', async () => {
    // audit_logs is a view (migration 6): the written events are in audit_log_rows.
    const indexes = await pool.query<{ indexdef: string }>(
      `SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'audit_log_rows'`,
    );
    const defs = indexes.rows.map((row) => row.indexdef);
    expect(defs.filter((def) => /USING hash \(correlation_id\)/.test(def))).toHaveLength(1);
    expect(defs.filter((def) => /correlation_id/.test(def))).toHaveLength(1);
  });

  it('stores token hashes only', async () => {
    const columns = await pool.query<{ column_name: string }>(
      `SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'worker_tokens' ORDER BY ordinal_position`,
    );
    expect(columns.rows.map((row) => row.column_name)).toEqual(['hash', 'worker_id', 'expires_at']);
  });

  it('refuses a state the domain does not know (INVALID_ARGUMENT)', async () => {
    const store = createPostgresStore({ pool });
    const job = makeTestJob();
    await store.insertJob(job);
    await expect(store.updateJob(job.id, {}, { state: 'BOGUS' as never })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(store.insertWorker(makeTestWorker({ state: 'ZOMBIE' as never }))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await store.close();
  });

  it('stores a NUL character in a log line as U+FFFD (PostgreSQL text cannot hold NUL)', async () => {
    const store = createPostgresStore({ pool });
    const job = makeTestJob();
    await store.insertJob(job);
    await store.appendLogs(job.id, [{ timestamp: 1, stream: 'stdout', text: 'a\u0000b' }]);
    await store.appendLogBatch(job.id, packLogLineBatch([{ timestamp: 2, stream: 'stdout', text: 'c\u0000d' }]));
    expect((await store.readLogs(job.id, 1, 10)).map((line) => line.text)).toEqual(['a\uFFFDb', 'c\uFFFDd']);
    await store.close();
  });

  it('refuses logs for an unknown job (NOT_FOUND)', async () => {
    const store = createPostgresStore({ pool });
    await expect(store.appendLogs('job_missing', [{ timestamp: 1, stream: 'stdout', text: 'x' }])).rejects.toMatchObject({
      code: 'NOT_FOUND',
    });
    await expect(store.appendLogBatch('job_missing', packLogLineBatch([{ timestamp: 1, stream: 'stdout', text: 'x' }]))).rejects.toMatchObject({
      code: 'NOT_FOUND',
    });
    await store.close();
  });

  it('leaves a pool it was given open on close', async () => {
    const store = createPostgresStore({ pool });
    await store.listJobs();
    await store.close();
    expect((await pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });
});

describe('configuration', () => {
  const bad: [string, unknown][] = [
    ['missing', {}],
    ['empty', { connectionString: '' }],
    ['not a string', { connectionString: 42 }],
    ['malformed', { connectionString: 'not a url' }],
    ['wrong scheme', { connectionString: 'mysql://user@localhost/db' }],
    ['no host', { connectionString: 'postgres:///db' }],
  ];
  for (const [label, connection] of bad) {
    it(`refuses a ${label} connection string (INVALID_ARGUMENT, field connectionString)`, () => {
      let caught: unknown;
      try {
        createPostgresStore(connection as never);
      } catch (error) {
        caught = error;
      }
      expect(HodeiError.isInstance(caught)).toBe(true);
      expect(caught).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'connectionString' });
    });
  }

  it('refuses a bad schema or pool size', async () => {
    const url = 'postgres://u:p@localhost:5432/db';
    expect(() => createPostgresStore({ connectionString: url }, { schema: 'x; DROP TABLE jobs' })).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT', field: 'schema' }),
    );
    expect(() => createPostgresStore({ connectionString: url }, { poolSize: 0 })).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT', field: 'poolSize' }),
    );
    await expect(migrate('http://localhost')).rejects.toMatchObject({ field: 'connectionString' });
  });

  it('accepts postgres:// and postgresql:// URLs without connecting', async () => {
    const store = createPostgresStore({ connectionString: 'postgresql://u:p@localhost:1/db' }, { poolSize: 2, schema: 'hodei' });
    expect(store).toBeInstanceOf(PostgresStore);
    expect(store.name).toBe('postgres');
    expect(store.specificationVersion).toBe('v1');
    await store.close();
  });
});

describe('errors', () => {
  it('reports an unreachable server as UNAVAILABLE naming the query, with the pg error as cause', async () => {
    const port = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const address = server.address() as { port: number };
        server.close(() => resolve(address.port));
      });
    });
    const store = createPostgresStore({ connectionString: `postgres://u:p@127.0.0.1:${port}/db` }, { autoMigrate: false });
    const error = await store.getJob('job_1').catch((caught: unknown) => caught);
    expect(HodeiError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringContaining('getJob') });
    expect((error as Error).cause).toBeInstanceOf(Error);
    const lazy = createPostgresStore({ connectionString: `postgres://u:p@127.0.0.1:${port}/db` });
    const migrating = await lazy.listJobs().catch((caught: unknown) => caught);
    expect(migrating).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringContaining('migrate') });
    await store.close();
    await lazy.close();
  });
});
