#!/usr/bin/env node
// STUDY, NOT THE PRODUCT. What one row of each kind of write costs PostgreSQL on this machine, to tell which part
// of PostgresStore's finish (bench/store-statements.mjs: the `finished` phase) is the store's own statement and
// which part the row write it cannot avoid. Jobs are queued and claimed through PostgresStore (migration 8's
// tables), then each statement below runs over them in statements of 500 rows, on one connection that carries
// the settings PostgresStore gives its own connections, each pass in a transaction rolled back (the same rows for
// every statement), alternating statements round by round. Prints the server process's CPU per row (/proc, 10 ms
// ticks: 10,000 rows resolve 1 µs), the median of the rounds. Not a timed test.
//
//   node bench/experiments/row-write-costs.mjs [--jobs N] [--rounds R]
//   HODEI_BENCH_DATABASE_URL=postgres://... (else a throwaway embedded PostgreSQL)
//
// Needs `npx turbo run build` first.
import { parseArgs } from 'node:util';
import pg from 'pg';
import { startDatabase } from '../../scripts/throwaway-postgres.mjs';
import { processCpuMs } from '../lib/process-cpu.mjs';
import { median } from '../lib/stats.mjs';
import { audit, noopJobs } from '../store-jobs.mjs';

const SCHEMA = 'bench_row_costs';
const ROWS_PER_STATEMENT = 500;

/** The statements measured, each over a batch of job ids (`$1`, a text[]): name and SQL. */
const STATEMENTS = [
  ['read the job row by id', `SELECT j.id FROM ${SCHEMA}.jobs AS j JOIN unnest($1::text[]) AS u(id) ON j.id = u.id`],
  [
    'update the job row (HOT, jobs)',
    `UPDATE ${SCHEMA}.jobs AS j SET state = 'SUCCEEDED', started_at = now(), completed_at = now(), duration_ms = 0, exit_code = 0
  FROM unnest($1::text[]) AS u(id) WHERE j.id = u.id`,
  ],
  [
    'update the same row, no triggers',
    `UPDATE ${SCHEMA}.jobs_bare AS j SET state = 'SUCCEEDED', started_at = now(), completed_at = now(), duration_ms = 0, exit_code = 0
  FROM unnest($1::text[]) AS u(id) WHERE j.id = u.id`,
  ],
  ['update a narrow row (HOT)', `UPDATE ${SCHEMA}.narrow AS n SET state = 'SUCCEEDED' FROM unnest($1::text[]) AS u(id) WHERE n.id = u.id`],
  [
    'insert a narrow row (primary key)',
    `INSERT INTO ${SCHEMA}.results (id, state, completed_at, exit_code) SELECT u.id, 'SUCCEEDED', now(), 0 FROM unnest($1::text[]) AS u(id)`,
  ],
  ['delete a narrow row by id', `DELETE FROM ${SCHEMA}.narrow AS n USING unnest($1::text[]) AS u(id) WHERE n.id = u.id`],
  ['delete the claim row (job_claims)', `DELETE FROM ${SCHEMA}.job_claims AS c USING unnest($1::text[]) AS u(id) WHERE c.worker_id = 'w-bench' AND c.id = u.id`],
];

async function prepare(url, jobCount) {
  const { createPostgresStore } = await import('@hodei/store-postgres');
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
  await admin.end();
  const store = createPostgresStore({ connectionString: url }, { schema: SCHEMA, poolSize: 4 });
  await store.migrate();
  const jobs = noopJobs(jobCount);
  await Promise.all(jobs.map((job) => store.insertJob(job, audit('job.queued', job.id, { name: job.spec.name }, job.createdAt))));
  const ids = [];
  for (let claimAt = Date.now(); ; claimAt += 1) {
    const claimed = await store.claimJobs({ workerId: 'w-bench', labels: {}, limit: ROWS_PER_STATEMENT, now: claimAt });
    if (claimed.length === 0) break;
    ids.push(...claimed.map((job) => job.id));
  }
  await store.close();
  return ids;
}

async function main() {
  const { values: args } = parseArgs({ options: { jobs: { type: 'string', default: '10000' }, rounds: { type: 'string', default: '3' } } });
  const database = await startDatabase();
  try {
    const ids = await prepare(database.url, Number(args.jobs));
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      // As PostgresStore's own connections: the store's statements keep the live rows and send the NOTIFYs, so the
      // triggers that do it for other writers skip themselves (their WHEN is false).
      await client.query(`SET hodei.live_rows_by_statement = on`);
      await client.query(`SET hodei.notify_by_statement = on`);
      await client.query(`CREATE TABLE ${SCHEMA}.jobs_bare (LIKE ${SCHEMA}.jobs INCLUDING ALL) WITH (fillfactor = 30)`);
      await client.query(`INSERT INTO ${SCHEMA}.jobs_bare OVERRIDING SYSTEM VALUE SELECT * FROM ${SCHEMA}.jobs`);
      await client.query(`CREATE TABLE ${SCHEMA}.narrow (id text PRIMARY KEY, state text NOT NULL) WITH (fillfactor = 30)`);
      await client.query(`INSERT INTO ${SCHEMA}.narrow SELECT id, 'ASSIGNED' FROM ${SCHEMA}.jobs`);
      await client.query(`CREATE TABLE ${SCHEMA}.results (id text PRIMARY KEY, state text NOT NULL, completed_at timestamptz, exit_code integer)`);
      await client.query(`VACUUM ANALYZE ${SCHEMA}.jobs, ${SCHEMA}.jobs_bare, ${SCHEMA}.narrow, ${SCHEMA}.job_claims`);
      const [{ pid }] = (await client.query('SELECT pg_backend_pid() AS pid')).rows;
      const samples = new Map(STATEMENTS.map(([name]) => [name, []]));
      for (let round = 0; round < Number(args.rounds); round += 1) {
        for (const [name, sql] of STATEMENTS) {
          await client.query('BEGIN');
          const before = processCpuMs(pid).own;
          for (let offset = 0; offset < ids.length; offset += ROWS_PER_STATEMENT) {
            await client.query(sql, [ids.slice(offset, offset + ROWS_PER_STATEMENT)]);
          }
          const after = processCpuMs(pid).own;
          await client.query('ROLLBACK');
          samples.get(name).push(((after - before) * 1000) / ids.length);
        }
        await client.query(`VACUUM ${SCHEMA}.jobs, ${SCHEMA}.jobs_bare, ${SCHEMA}.narrow, ${SCHEMA}.job_claims, ${SCHEMA}.results`);
      }
      console.log(`${ids.length} claimed jobs, statements of ${ROWS_PER_STATEMENT} rows, median of ${args.rounds} rounds`);
      console.log('statement                              server CPU µs/row   (rounds)');
      for (const [name, values] of samples) {
        console.log(`${name.padEnd(38)} ${median(values).toFixed(1).padStart(17)}   (${values.map((value) => value.toFixed(1)).join(', ')})`);
      }
      await client.query(`DROP SCHEMA ${SCHEMA} CASCADE`);
    } finally {
      await client.end();
    }
  } finally {
    await database.stop();
  }
}

await main();
