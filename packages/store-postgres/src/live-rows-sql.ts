/*
 * SQL that keeps the live-job tables of migration 8 in step with `jobs`, as CTE bodies for the store's batched
 * statements (the statement that changes a job also moves its live row):
 * - `job_queue`: a row per QUEUED job, in queue order (its only index);
 * - `job_claims`: a row per ASSIGNED or RUNNING job, found through its worker and claim time.
 * A job without a worker or claim time (inserted so, by a test or an import) has its claim row under '' and
 * -infinity, so that every key column is NOT NULL and every match an index lookup ({@link claimKeyMatches}).
 * Each fragment reads a CTE `source` whose rows are jobs as the statement left them.
 *
 * A job missing its row is what they must never leave. Every job that enters the queue or a claim gets a row of
 * its own (a plain insert: neither index is unique), and a row is deleted only for a job that left the live state
 * it stands for. A row left behind is allowed: when two statements change one job at the same time, the later one
 * (waiting for the first's lock) reads the live rows as they were when it started and may not see a row the first
 * wrote. Such a row is never taken over by a job entering the queue or a claim again (a sweep or a claim that
 * judged it stale may still delete it): the job gets a new row beside it. Readers dedupe and recheck every live
 * row against `jobs` (the claim also the job's own `not_before`, which a row left behind may not hold), a claim
 * that picks such a row deletes it, and the end of a retention sweep deletes the rest ({@link pruneLiveRowsSql}).
 */

/** The order queued jobs run in, over the columns of `alias` (a job or its queue row): highest priority first, then oldest. */
export function queueOrder(alias: string): string {
  return `${alias}.priority DESC, ${alias}.created_at ASC, ${alias}.insert_seq ASC`;
}

/** The states a job holds a `job_claims` row in, as an SQL list. */
const CLAIMED = `('ASSIGNED', 'RUNNING')`;

/**
 * True (SQL) when claim row `c` is the one of the job `s` with worker `worker` and claim time `assigned` (SQL
 * expressions over `s`, possibly NULL).
 */
function claimKeyMatches(worker: string, assigned: string): string {
  const [workerKey, assignedKey] = claimKey(worker, assigned);
  return `c.worker_id = ${workerKey} AND c.assigned_at = ${assignedKey} AND c.id = s.id`;
}

/**
 * The key columns of the claim row of a job with worker `worker` and claim time `assigned` (SQL expressions,
 * possibly NULL): '' and -infinity stand for none, so that every key column is NOT NULL.
 */
function claimKey(worker: string, assigned: string): [string, string] {
  return [`coalesce(${worker}, '')`, `coalesce(${assigned}, '-infinity')`];
}

/**
 * The job as it was before an update, for the statements whose live-row work depends on it: a CTE `locked` locks
 * the rows first (`FOR UPDATE`, so its values are the latest committed ones, which a sub-select of the statement's
 * snapshot would not be when another statement changed the job in between) and the UPDATE joins it as `l`.
 */
export function lockedJobsSql(jobs: string): string {
  return `SELECT l.id, l.state, l.worker_id, l.assigned_at FROM ${jobs} AS l WHERE l.id = ANY((SELECT $1::text[])::text[]) FOR UPDATE`;
}

/** What the UPDATE returns from `locked` (see lockedJobsSql). */
export const OLD_ROW_RETURNED = [
  `l.state = 'QUEUED' AS hodei_was_queued`,
  `l.state IN ${CLAIMED} AS hodei_was_claimed`,
  'l.worker_id AS hodei_old_worker',
  'l.assigned_at AS hodei_old_assigned_at',
];

/** What `source` rows must return for {@link enqueueSql}: the queue row's columns. */
export const QUEUE_ROW_RETURNED = (alias: string): string[] => [
  `${alias}.priority AS hodei_priority`,
  `${alias}.insert_seq AS hodei_insert_seq`,
  `coalesce(${alias}.spec -> 'labels', '{}') AS hodei_labels`,
];

/**
 * A new queue row for each QUEUED job of `source` (which returns `QUEUE_ROW_RETURNED` and `created_at`,
 * `not_before`, `state`, `id`).
 */
export function enqueueSql(queue: string, source: string): string {
  return `INSERT INTO ${queue} (priority, created_at, insert_seq, id, not_before, labels)
  SELECT s.hodei_priority, s.created_at, s.hodei_insert_seq, s.id, s.not_before, s.hodei_labels FROM ${source} AS s WHERE s.state = 'QUEUED'`;
}

/**
 * The queue work of an update whose `source` returns `QUEUE_ROW_RETURNED`, `hodei_was_queued` (the job was QUEUED
 * before the update, as locked: see OLD_ROW_RETURNED) and the job columns: the rows of every job that was or is
 * QUEUED go, and a job that is QUEUED gets a new row (also one that stayed QUEUED: its `not_before` may have
 * changed). Neither waits for a queue row a claim holds (SKIP LOCKED; the index is not unique): that claim deletes
 * the row, and assigns the job only if it is still QUEUED and due once this update is done, which the new row
 * then stands for. (Waiting for it could deadlock: the claim waits for this statement's lock on the job. Changing
 * the held row in place instead would leave a job the claim does not take without a row.) The rows are found by
 * their key, not their ctid: a row another statement updated since this one's snapshot is still found, its newest
 * version once locked. Returns CTE bodies by name.
 */
export function requeueSqls(queue: string, source: string): [string, string][] {
  return [
    ['queued', enqueueSql(queue, source)],
    [
      'dequeued',
      `DELETE FROM ${queue} AS q WHERE (q.priority, q.created_at, q.insert_seq) IN (
    SELECT h.priority, h.created_at, h.insert_seq FROM ${queue} AS h
    JOIN ${source} AS s ON h.priority = s.hodei_priority AND h.created_at = s.created_at AND h.insert_seq = s.hodei_insert_seq
    WHERE s.hodei_was_queued OR s.state = 'QUEUED'
    FOR UPDATE OF h SKIP LOCKED
  )`,
    ],
  ];
}

/**
 * Adds a claim row for each job of `source` that is ASSIGNED or RUNNING. With `afterUpdate`, `source` also returns
 * OLD_ROW_RETURNED, and a job that held that very claim before the update gets none (it has it).
 */
export function holdSql(claims: string, source: string, afterUpdate: boolean): string {
  const unless = afterUpdate
    ? `\n    AND NOT (s.hodei_was_claimed AND s.worker_id IS NOT DISTINCT FROM s.hodei_old_worker AND s.assigned_at IS NOT DISTINCT FROM s.hodei_old_assigned_at)`
    : '';
  return `INSERT INTO ${claims} (worker_id, assigned_at, id)
  SELECT ${claimKey('s.worker_id', 's.assigned_at').join(', ')}, s.id FROM ${source} AS s WHERE s.state IN ${CLAIMED}${unless}`;
}

/**
 * Deletes the claim row a job of `source` held before the statement (worker `oldWorker` and claim time
 * `oldAssigned`, columns of `source`) when it is no longer ASSIGNED or RUNNING under that worker and claim time.
 */
export function releaseSql(claims: string, source: string, oldWorker: string, oldAssigned: string): string {
  return `DELETE FROM ${claims} AS c USING ${source} AS s
  WHERE ${claimKeyMatches(`s.${oldWorker}`, `s.${oldAssigned}`)}
    AND (s.state NOT IN ${CLAIMED} OR s.worker_id IS DISTINCT FROM s.${oldWorker} OR s.assigned_at IS DISTINCT FROM s.${oldAssigned})`;
}

/**
 * The ids of the live jobs in states `$1` (text[]) by their live rows: the newest `$2` queue rows (by creation)
 * when `$1` has QUEUED, every claim row when it has ASSIGNED or RUNNING. The caller rechecks them against `jobs`.
 */
export function liveIdsSql(queue: string, claims: string): string {
  return `ARRAY(
    (SELECT q.id FROM ${queue} AS q WHERE 'QUEUED' = ANY($1::text[]) ORDER BY q.created_at DESC, q.insert_seq DESC LIMIT $2)
    UNION ALL
    (SELECT c.id FROM ${claims} AS c WHERE $1::text[] && ARRAY['ASSIGNED', 'RUNNING'])
  )`;
}

/**
 * Deletes the live rows that no longer match their job (one left behind in a race, or by a writer that kept
 * neither table): queue rows of jobs not QUEUED, claim rows of jobs not ASSIGNED or RUNNING under that worker
 * and claim time. Both tables hold only the live jobs, so this reads no history. Returns nothing.
 */
export function pruneLiveRowsSql(jobs: string, queue: string, claims: string): string {
  // Scalar sub-selects, one primary-key lookup per live row: as NOT EXISTS, the planner hash-joins a scan of the
  // whole history instead (45 ms at 300,000 jobs).
  const [worker, assigned] = claimKey('j.worker_id', 'j.assigned_at');
  return `WITH stale_queue AS (
  DELETE FROM ${queue} AS q
  WHERE (SELECT j.state = 'QUEUED' FROM ${jobs} AS j WHERE j.id = q.id) IS NOT TRUE
), stale_claims AS (
  DELETE FROM ${claims} AS c
  WHERE (SELECT j.state IN ${CLAIMED} AND ${worker} = c.worker_id AND ${assigned} = c.assigned_at
         FROM ${jobs} AS j WHERE j.id = c.id) IS NOT TRUE
)
SELECT 1`;
}
