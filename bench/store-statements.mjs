#!/usr/bin/env node
// What PostgreSQL spends on PostgresStore's batched job writes, per statement and per row, for the calls the
// engine makes per job: insertJob with its audit event; claimJobs (QUEUED→ASSIGNED, job.assigned derived from
// the row); compareAndSetJob with the start and the result of a short job together (→SUCCEEDED, job.started and
// job.finished derived), as JobController.writeResult makes it. C callers (or a claim of C jobs) in lockstep, so
// that each step is one statement of C rows, through a store with ONE pooled connection, so that one server
// process runs every statement and its CPU time can be read from /proc.
// Prints, for the insert, claim and finish phases: statements (transactions) and rows per statement, wall time
// per statement, the server process's CPU per statement and per row (bind, execute, triggers, commit, send),
// this process's CPU per statement and per row (encode, parse, settle), and WAL bytes per row. Not a timed test.
//
//   node bench/store-statements.mjs [--jobs N] [--concurrency C] [--rounds R] [--store a/index.js,b/index.js]
//
// --concurrency 24 is the engine's shape without prefetch (a worker's free slots), --concurrency 500 the shape
// of bench/store.mjs with prefetch 500 (claims of several hundred jobs, finishes batched as many).
// --store alternates builds of @hodei/store-postgres round by round (e.g. a copy of main's dist against this
// checkout's), each on a fresh schema of the same server, so a shared machine's load hits both alike.
// Server CPU needs a local server on Linux (the throwaway embedded one, the default); otherwise it prints n/a.
// /proc counts CPU in 10 ms ticks: keep jobs × phases large enough (the default 9,600 jobs resolve 1 µs a row).
// Needs `npx turbo run build` first.
import { relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { startDatabase } from '../scripts/throwaway-postgres.mjs';
import { processCpuMs } from './lib/process-cpu.mjs';
import { isMainModule } from './lib/script.mjs';
import { median } from './lib/stats.mjs';
import { audit, noopJobs } from './store-jobs.mjs';

/** User + system CPU milliseconds of the server process `pid` so far, or undefined when /proc cannot tell. */
function serverCpuMs(pid) {
  try {
    return processCpuMs(pid).own;
  } catch {
    return undefined;
  }
}

/**
 * The next transaction id (each batched write statement is one transaction that assigns one) and the WAL
 * position, read on `client` (neither read assigns a transaction id).
 */
async function counters(client) {
  const { rows } = await client.query(
    `SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xid, pg_current_wal_lsn() - '0/0'::pg_lsn AS wal`,
  );
  return { xid: Number(rows[0].xid), wal: Number(rows[0].wal) };
}

/** One run of `jobs` jobs through the store module at `module`, on a fresh `schema`. */
async function measure(url, module, schema, jobCount, concurrency) {
  const { createPostgresStore } = await import(module);
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  const store = createPostgresStore({ connectionString: url }, { schema, poolSize: 1 });
  try {
    await store.migrate();
    const [{ pid }] = (await store.pool.query('SELECT pg_backend_pid() AS pid')).rows;
    const jobs = noopJobs(jobCount);
    const phase = async (run) => {
      await admin.query('CHECKPOINT');
      const before = await counters(admin);
      const serverBefore = serverCpuMs(pid);
      const nodeBefore = process.cpuUsage();
      const started = performance.now();
      const rows = await run();
      const wallMs = performance.now() - started;
      const node = process.cpuUsage(nodeBefore);
      const serverAfter = serverCpuMs(pid);
      const after = await counters(admin);
      const statements = after.xid - before.xid;
      return {
        statements,
        rowsPerStatement: rows / statements,
        wallMsPerStatement: wallMs / statements,
        serverCpuMsPerStatement: serverBefore === undefined || serverAfter === undefined ? undefined : (serverAfter - serverBefore) / statements,
        nodeCpuMsPerStatement: (node.user + node.system) / 1000 / statements,
        nodeCpuUsPerRow: (node.user + node.system) / rows,
        walBytesPerRow: (after.wal - before.wal) / rows,
      };
    };
    const inserted = await phase(async () => {
      for (let offset = 0; offset < jobs.length; offset += concurrency) {
        await Promise.all(
          jobs.slice(offset, offset + concurrency).map((job) => store.insertJob(job, audit('job.queued', job.id, { name: job.spec.name }, job.createdAt))),
        );
      }
      return jobs.length;
    });
    const claimed = [];
    const claims = await phase(async () => {
      // Each claim a later millisecond than the one before, as the engine's claims of one worker.
      for (let claimAt = Date.now(); ; claimAt += 1) {
        const jobsClaimed = await store.claimJobs({ workerId: 'w-bench', labels: {}, limit: concurrency, now: claimAt });
        if (jobsClaimed.length === 0) break;
        claimed.push(...jobsClaimed);
      }
      if (claimed.length !== jobs.length) throw new Error(`claimed ${claimed.length} of ${jobs.length} jobs`);
      return claimed.length;
    });
    const finishes = await phase(async () => {
      for (let offset = 0; offset < claimed.length; offset += concurrency) {
        await Promise.all(
          claimed.slice(offset, offset + concurrency).map(async (job) => {
            const now = Date.now();
            const finished = await store.compareAndSetJob(
              job.id,
              { states: ['ASSIGNED'], epoch: job.epoch },
              { startedAt: now, completedAt: now, durationMs: 0, exitCode: 0, state: 'SUCCEEDED' },
              [audit('job.started', job.id, { workerId: 'w-bench', epoch: job.epoch }, now), audit('job.finished', job.id, { state: 'SUCCEEDED', exitCode: 0 }, now)],
            );
            if (!finished) throw new Error(`job ${job.id} did not finish`);
          }),
        );
      }
      return claimed.length;
    });
    return { inserted, claimed: claims, finished: finishes };
  } finally {
    await store.close();
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.end();
  }
}

function format(value, digits) {
  return value === undefined ? 'n/a' : value.toFixed(digits);
}

/**
 * Runs the measurement `rounds` times for each store module (alternating) and returns, per module, the
 * medians over rounds of each figure of the insert, claim and finish phases.
 */
export async function runStatementBench({ jobs = 9_600, concurrency = 24, rounds = 3, stores = ['@hodei/store-postgres'], log = console.log } = {}) {
  const database = await startDatabase();
  try {
    const samples = stores.map(() => []);
    for (let round = 0; round < rounds; round += 1) {
      for (const [index, module] of stores.entries()) {
        samples[index].push(await measure(database.url, module, `bench_statements_${index}`, jobs, concurrency));
      }
    }
    log(`${jobs} jobs, ${concurrency} callers in lockstep, one pooled connection, medians of ${rounds} alternating rounds`);
    log('store                                    phase     stmts  rows/stmt  wall ms/stmt  server CPU ms/stmt  server CPU us/row  node CPU us/row  WAL B/row');
    const results = stores.map((module, index) => {
      const result = {};
      for (const phase of ['inserted', 'claimed', 'finished']) {
        const figures = {};
        for (const key of Object.keys(samples[index][0][phase])) figures[key] = median(samples[index].map((sample) => sample[phase][key]));
        result[phase] = figures;
        const perRow = figures.serverCpuMsPerStatement === undefined ? undefined : (figures.serverCpuMsPerStatement / figures.rowsPerStatement) * 1000;
        const label = module.startsWith('file:') ? relative(process.cwd(), fileURLToPath(module)) : module;
        log(
          `${label.slice(-40).padEnd(40)} ${phase.padEnd(8)} ${String(figures.statements).padStart(7)} ${format(figures.rowsPerStatement, 1).padStart(10)}` +
            ` ${format(figures.wallMsPerStatement, 3).padStart(13)} ${format(figures.serverCpuMsPerStatement, 3).padStart(19)} ${format(perRow, 1).padStart(18)}` +
            ` ${format(figures.nodeCpuUsPerRow, 1).padStart(16)} ${format(figures.walBytesPerRow, 0).padStart(10)}`,
        );
      }
      return { store: module, ...result };
    });
    return results;
  } finally {
    await database.stop();
  }
}

if (isMainModule(import.meta.url)) {
  const { values: args } = parseArgs({
    options: {
      jobs: { type: 'string', default: '9600' },
      concurrency: { type: 'string', default: '24' },
      rounds: { type: 'string', default: '3' },
      store: { type: 'string' },
    },
  });
  const stores = args.store ? args.store.split(',').map((path) => (path.startsWith('@') ? path : pathToFileURL(path).href)) : undefined;
  await runStatementBench({ jobs: Number(args.jobs), concurrency: Number(args.concurrency), rounds: Number(args.rounds), stores });
}
