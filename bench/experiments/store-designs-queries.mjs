#!/usr/bin/env node
// PROTOTYPE, NOT THE PRODUCT (issue 7, with store-designs.mjs). The state queries a product store needs, timed
// with EXPLAIN ANALYZE on a long history, for today's schema (A), F (no state index on `jobs`), P1 (F +
// `job_active`; P2 has the same tables), P3 (F + `job_claims`; P4 has the same tables) and P5 (P3 +
// `job_outcomes`): the stranded sweep (every ASSIGNED job), listJobs by state (newest
// first, limit 50: live states, a common finished state, a rare one and one no job is in), a retention batch (1,000 finished
// jobs completed before a cutoff), queuedJobs (the queue head, 100) and the claim's in-doubt retry (the jobs
// ASSIGNED to worker W at claim time T).
//
// History: --history finished jobs (default 200,000: 1 % FAILED, the rest SUCCEEDED), one a second in the past,
// each completed 10 s after its creation; live: 20,000 QUEUED, 500 ASSIGNED (10 workers x 50, one claim time
// each), 200 RUNNING, newer than the history. VACUUM ANALYZE, then each query 5 times; the best execution time
// and the plan's scan nodes are printed.
//
//   node bench/experiments/store-designs-queries.mjs [--history N] [--design A,F,P1,P3,P5]
import { parseArgs } from 'node:util';
import pg from 'pg';
import { startDatabase } from '../../scripts/throwaway-postgres.mjs';
import { DESIGNS, FINISHED } from './store-designs.mjs';

const QUEUED = 20_000;
const WORKERS = 10;
const PER_WORKER = 50;
const RUNNING = 200;

/** Fills `s.jobs` (and the design's live table) in SQL: history, then the live jobs. */
function fill(s, key, history) {
  const base = `now() - make_interval(secs => ${history + QUEUED + 1000})`;
  const rows = `
INSERT INTO ${s}.jobs (id, state, spec, priority, attempt, epoch, worker_id, created_at, assigned_at, started_at, completed_at, exit_code)
SELECT 'h-' || g, CASE WHEN g % 100 = 0 THEN 'FAILED' ELSE 'SUCCEEDED' END,
  jsonb_build_object('name', 'noop', 'command', 'true', 'labels', '{}'::jsonb, 'priority', 0), 0, 1, 1, 'w-old',
  ${base} + make_interval(secs => g), ${base} + make_interval(secs => g + 1), ${base} + make_interval(secs => g + 1),
  ${base} + make_interval(secs => g + 10), CASE WHEN g % 100 = 0 THEN 1 ELSE 0 END
FROM generate_series(1, ${history}) AS g;
INSERT INTO ${s}.jobs (id, state, spec, priority, attempt, epoch, worker_id, created_at, assigned_at, started_at)
SELECT 'l-' || g,
  CASE WHEN g <= ${WORKERS * PER_WORKER} THEN 'ASSIGNED' WHEN g <= ${WORKERS * PER_WORKER + RUNNING} THEN 'RUNNING' ELSE 'QUEUED' END,
  jsonb_build_object('name', 'noop', 'command', 'true', 'labels', '{}'::jsonb, 'priority', 0), 0, 1,
  CASE WHEN g <= ${WORKERS * PER_WORKER + RUNNING} THEN 1 ELSE 0 END,
  CASE WHEN g <= ${WORKERS * PER_WORKER} THEN 'w-' || (g % ${WORKERS}) WHEN g <= ${WORKERS * PER_WORKER + RUNNING} THEN 'w-run' END,
  now() - make_interval(secs => ${QUEUED + 1000} - g),
  CASE WHEN g <= ${WORKERS * PER_WORKER} THEN timestamptz '2026-01-01' + make_interval(secs => g % ${WORKERS})
       WHEN g <= ${WORKERS * PER_WORKER + RUNNING} THEN now() END,
  CASE WHEN g > ${WORKERS * PER_WORKER} AND g <= ${WORKERS * PER_WORKER + RUNNING} THEN now() END
FROM generate_series(1, ${QUEUED + WORKERS * PER_WORKER + RUNNING}) AS g;`;
  if (key === 'A') return rows;
  const queue = `
INSERT INTO ${s}.job_queue (priority, created_at, seq, id, labels)
SELECT priority, created_at, insert_seq, id, spec -> 'labels' FROM ${s}.jobs WHERE state = 'QUEUED';`;
  if (key === 'F') return rows + queue;
  const claims = `
INSERT INTO ${s}.job_claims (worker_id, assigned_at, id)
SELECT worker_id, assigned_at, id FROM ${s}.jobs WHERE state IN ('ASSIGNED', 'RUNNING');`;
  if (key === 'P3') return rows + queue + claims;
  if (key === 'P5') {
    return `${rows}${queue}${claims}
INSERT INTO ${s}.job_outcomes (id, state, created_at, seq)
SELECT id, state, created_at, insert_seq FROM ${s}.jobs WHERE state IN ${FINISHED};`;
  }
  // P1/P2: in P2 the triggers have filled job_active already.
  return `${rows}
INSERT INTO ${s}.job_active (id, state, worker_id, assigned_at, priority, created_at, seq, not_before, labels)
SELECT id, state, worker_id, assigned_at, priority, created_at, insert_seq, not_before, spec -> 'labels' FROM ${s}.jobs
WHERE state IN ('QUEUED', 'ASSIGNED', 'RUNNING') ON CONFLICT (id) DO NOTHING;`;
}

const LIST_COLUMNS = 'j.id, j.state, j.spec, j.created_at, j.completed_at';
const CUTOFF = (history) => `now() - make_interval(secs => ${QUEUED + 1000 + Math.floor(history / 2)})`;

/**
 * The five queries, per schema: `jobs` alone (A, F), `job_active` for the live states (P1, P2), `job_claims`
 * (the claimed jobs, read by id in `jobs`) and `job_queue` (P3).
 */
function queries(s, key, history) {
  const cutoff = CUTOFF(history);
  if (key === 'P3' || key === 'P5') return claimsQueries(s, history, { outcomes: key === 'P5' });
  const live = key.startsWith('P');
  const listFinished = (state) =>
    `SELECT ${LIST_COLUMNS} FROM ${s}.jobs AS j WHERE j.state = '${state}' ORDER BY j.created_at DESC, j.insert_seq DESC LIMIT 50`;
  return [
    [
      'stranded sweep (all ASSIGNED)',
      live
        ? `SELECT a.id, a.worker_id, a.assigned_at FROM ${s}.job_active AS a WHERE a.state = 'ASSIGNED'`
        : `SELECT j.id, j.worker_id, j.assigned_at FROM ${s}.jobs AS j WHERE j.state = 'ASSIGNED'`,
    ],
    [
      'listJobs RUNNING, 50',
      live
        ? `SELECT ${LIST_COLUMNS} FROM ${s}.jobs AS j WHERE j.id = ANY(ARRAY(SELECT a.id FROM ${s}.job_active AS a WHERE a.state = 'RUNNING' ORDER BY a.created_at DESC, a.seq DESC LIMIT 50)) ORDER BY j.created_at DESC, j.insert_seq DESC`
        : listFinished('RUNNING'),
    ],
    [
      'listJobs QUEUED, 50',
      live
        ? `SELECT ${LIST_COLUMNS} FROM ${s}.jobs AS j WHERE j.id = ANY(ARRAY(SELECT a.id FROM ${s}.job_active AS a WHERE a.state = 'QUEUED' ORDER BY a.created_at DESC, a.seq DESC LIMIT 50)) ORDER BY j.created_at DESC, j.insert_seq DESC`
        : listFinished('QUEUED'),
    ],
    ['listJobs SUCCEEDED, 50', listFinished('SUCCEEDED')],
    ['listJobs FAILED (1 %), 50', listFinished('FAILED')],
    ['listJobs TIMED_OUT (none), 50', listFinished('TIMED_OUT')],
    [
      'retention batch (1,000)',
      key === 'A'
        ? `SELECT j.id FROM ${s}.jobs AS j WHERE j.state IN ${FINISHED} AND j.completed_at < ${cutoff} ORDER BY j.completed_at LIMIT 1000`
        : // A job finished before the cutoff was created before it: the created_at index bounds the scan.
          `SELECT j.id FROM ${s}.jobs AS j WHERE j.created_at < ${cutoff} AND j.state IN ${FINISHED} AND j.completed_at < ${cutoff} ORDER BY j.created_at LIMIT 1000`,
    ],
    [
      'queuedJobs head (100)',
      key === 'A'
        ? `SELECT j.id FROM ${s}.jobs AS j WHERE j.state = 'QUEUED' ORDER BY j.priority DESC, j.created_at ASC, j.insert_seq ASC LIMIT 100`
        : key === 'F'
        ? `SELECT q.id FROM ${s}.job_queue AS q ORDER BY q.priority DESC, q.created_at ASC, q.seq ASC LIMIT 100`
        : `SELECT a.id FROM ${s}.job_active AS a WHERE a.state = 'QUEUED' ORDER BY a.priority DESC, a.created_at ASC, a.seq ASC LIMIT 100`,
    ],
    [
      'in-doubt retry (W at T)',
      live
        ? `SELECT a.id FROM ${s}.job_active AS a WHERE a.state = 'ASSIGNED' AND a.worker_id = 'w-3' AND a.assigned_at = timestamptz '2026-01-01' + interval '3 s'`
        : `SELECT j.id FROM ${s}.jobs AS j WHERE j.state = 'ASSIGNED' AND j.worker_id = 'w-3' AND j.assigned_at = timestamptz '2026-01-01' + interval '3 s'`,
    ],
  ];
}

function claimsQueries(s, history, { outcomes }) {
  const cutoff = CUTOFF(history);
  const listFinished = (state) =>
    outcomes
      ? `SELECT ${LIST_COLUMNS} FROM ${s}.jobs AS j WHERE j.id = ANY(ARRAY(SELECT o.id FROM ${s}.job_outcomes AS o WHERE o.state = '${state}' ORDER BY o.created_at DESC, o.seq DESC LIMIT 50)) ORDER BY j.created_at DESC, j.insert_seq DESC`
      : `SELECT ${LIST_COLUMNS} FROM ${s}.jobs AS j WHERE j.state = '${state}' ORDER BY j.created_at DESC, j.insert_seq DESC LIMIT 50`;
  const claimedIn = (state) =>
    `SELECT ${LIST_COLUMNS} FROM ${s}.jobs AS j WHERE j.id = ANY(ARRAY(SELECT c.id FROM ${s}.job_claims AS c)) AND j.state = '${state}' ORDER BY j.created_at DESC, j.insert_seq DESC LIMIT 50`;
  return [
    [
      'stranded sweep (all ASSIGNED)',
      `SELECT j.id, j.worker_id, j.assigned_at FROM ${s}.jobs AS j WHERE j.id = ANY(ARRAY(SELECT c.id FROM ${s}.job_claims AS c)) AND j.state = 'ASSIGNED'`,
    ],
    ['listJobs RUNNING, 50', claimedIn('RUNNING')],
    [
      'listJobs QUEUED, 50',
      `SELECT ${LIST_COLUMNS} FROM ${s}.jobs AS j WHERE j.id = ANY(ARRAY(SELECT q.id FROM ${s}.job_queue AS q ORDER BY q.created_at DESC, q.seq DESC LIMIT 50)) ORDER BY j.created_at DESC, j.insert_seq DESC`,
    ],
    ['listJobs SUCCEEDED, 50', listFinished('SUCCEEDED')],
    ['listJobs FAILED (1 %), 50', listFinished('FAILED')],
    ['listJobs TIMED_OUT (none), 50', listFinished('TIMED_OUT')],
    [
      'retention batch (1,000)',
      `SELECT j.id FROM ${s}.jobs AS j WHERE j.created_at < ${cutoff} AND j.state IN ${FINISHED} AND j.completed_at < ${cutoff} ORDER BY j.created_at LIMIT 1000`,
    ],
    ['queuedJobs head (100)', `SELECT q.id FROM ${s}.job_queue AS q ORDER BY q.priority DESC, q.created_at ASC, q.seq ASC LIMIT 100`],
    [
      'in-doubt retry (W at T)',
      `SELECT j.id FROM ${s}.jobs AS j WHERE j.id = ANY(ARRAY(SELECT c.id FROM ${s}.job_claims AS c WHERE c.worker_id = 'w-3' AND c.assigned_at = timestamptz '2026-01-01' + interval '3 s')) AND j.state = 'ASSIGNED'`,
    ],
  ];
}

/** The scan nodes of a JSON plan: "Index Scan job_active_assigned_idx", "Seq Scan jobs", ... */
function scans(node, out = []) {
  if (/Scan/.test(node['Node Type'])) out.push(`${node['Node Type']} ${node['Index Name'] ?? node['Relation Name'] ?? ''}`.trim());
  for (const child of node.Plans ?? []) scans(child, out);
  return out;
}

const { values: args } = parseArgs({
  options: { history: { type: 'string', default: '200000' }, design: { type: 'string', default: 'A,F,P1,P3,P5' } },
});
const history = Number(args.history);
const database = await startDatabase();
const admin = new pg.Client({ connectionString: database.url });
await admin.connect();
try {
  console.log(
    `state queries: ${history} finished jobs + ${QUEUED} QUEUED, ${
      WORKERS * PER_WORKER
    } ASSIGNED, ${RUNNING} RUNNING; best of 5 EXPLAIN ANALYZE`
  );
  for (const key of args.design.split(',')) {
    const s = `queries_${key.toLowerCase()}`;
    await admin.query(`DROP SCHEMA IF EXISTS ${s} CASCADE; CREATE SCHEMA ${s}`);
    await admin.query(DESIGNS[key].ddl(s));
    await admin.query(fill(s, key, history));
    await admin.query(`VACUUM ANALYZE ${s}.jobs`);
    if (key === 'P1' || key === 'P2') await admin.query(`VACUUM ANALYZE ${s}.job_active`);
    if (key === 'F' || key === 'P3' || key === 'P5') await admin.query(`VACUUM ANALYZE ${s}.job_queue`);
    if (key === 'P3' || key === 'P5') await admin.query(`VACUUM ANALYZE ${s}.job_claims`);
    if (key === 'P5') await admin.query(`VACUUM ANALYZE ${s}.job_outcomes`);
    console.log(`${DESIGNS[key].name}`);
    for (const [label, sql] of queries(s, key, history)) {
      let best = Number.POSITIVE_INFINITY;
      let plan;
      let rows;
      for (let run = 0; run < 5; run += 1) {
        const { rows: explained } = await admin.query(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${sql}`);
        const top = explained[0]['QUERY PLAN'][0];
        if (top['Execution Time'] < best) {
          best = top['Execution Time'];
          plan = top.Plan;
          rows = top.Plan['Actual Rows'];
        }
      }
      const buffers = plan['Shared Hit Blocks'] + plan['Shared Read Blocks'];
      console.log(
        `  ${label.padEnd(30)} ${best.toFixed(3).padStart(9)} ms  ${String(rows).padStart(5)} rows  ${String(buffers).padStart(
          6
        )} buffers  ${[...new Set(scans(plan))].join(', ')}`
      );
    }
    await admin.query(`DROP SCHEMA ${s} CASCADE`);
  }
} finally {
  await admin.end();
  await database.stop();
}
