/*
 * SQL that keeps the live-job tables of migration 8 in step with `jobs`, as CTE bodies for the store's batched
 * statements (the statement that changes a job also moves its live row):
 * - `job_queue`: a row per QUEUED job, in queue order (its only index);
 * - `job_claims`: a row per ASSIGNED or RUNNING job, found through its worker and claim time.
 * A job without a worker or claim time (inserted so, by a test or an import) has its claim row under '' and
 * -infinity, so that every key column is NOT NULL and every match an index lookup ({@link claimKeyMatches}).
 * Each fragment reads a CTE `source` whose rows are jobs as the statement left them. Readers recheck every live
 * row against `jobs`, so a row these leave behind in a race is skipped by readers and deleted by the retention
 * sweep ({@link pruneLiveRowsSql}); a job missing its row is what they must never leave.
 */

/** The states a job holds a `job_claims` row in. */
export const CLAIMED_STATES = ['ASSIGNED', 'RUNNING'] as const;
const CLAIMED = `('ASSIGNED', 'RUNNING')`;

/**
 * True (SQL) when claim row `c` is the one of the job `s` with worker `worker` and claim time `assigned` (SQL
 * expressions over `s`, possibly NULL).
 */
function claimKeyMatches(worker: string, assigned: string): string {
  return `c.worker_id = coalesce(${worker}, '') AND c.assigned_at = coalesce(${assigned}, '-infinity') AND c.id = s.id`;
}

/** What `source` rows must return for {@link enqueueSql}: the queue row's columns. */
export const QUEUE_ROW_RETURNED = (alias: string): string[] => [
  `${alias}.priority AS hodei_priority`,
  `${alias}.insert_seq AS hodei_insert_seq`,
  `coalesce(${alias}.spec -> 'labels', '{}') AS hodei_labels`,
];

/**
 * Adds (or refreshes the `not_before` of) the queue row of each QUEUED job of `source` (which returns
 * `QUEUE_ROW_RETURNED` and `created_at`, `not_before`, `state`, `id`).
 */
export function enqueueSql(queue: string, source: string): string {
  return `INSERT INTO ${queue} (priority, created_at, insert_seq, id, not_before, labels)
  SELECT s.hodei_priority, s.created_at, s.hodei_insert_seq, s.id, s.not_before, s.hodei_labels FROM ${source} AS s WHERE s.state = 'QUEUED'
  ON CONFLICT (priority, created_at, insert_seq) DO UPDATE SET not_before = EXCLUDED.not_before`;
}

/**
 * Deletes the queue row of each job of `source` that is no longer QUEUED, through its queue order key. A row a
 * claim holds is skipped (SKIP LOCKED): that claim deletes it and, finding the job no longer QUEUED, leaves the
 * job alone. (Waiting for it instead could deadlock: the claim waits for this statement's lock on the job.)
 */
export function dequeueSql(queue: string, source: string): string {
  return `DELETE FROM ${queue} AS q WHERE q.ctid = ANY(ARRAY(
    SELECT q2.ctid FROM ${queue} AS q2 JOIN ${source} AS s
      ON q2.priority = s.hodei_priority AND q2.created_at = s.created_at AND q2.insert_seq = s.hodei_insert_seq
    WHERE s.state <> 'QUEUED'
    FOR UPDATE OF q2 SKIP LOCKED
  ))`;
}

/**
 * Adds a claim row for each job of `source` that is ASSIGNED or RUNNING; `unless` true skips one it has already
 * (needed where the job may have held one before the statement: an update, not the claim or an insert).
 */
export function holdSql(claims: string, source: string, unlessHeld: boolean): string {
  const held = unlessHeld
    ? `\n    AND NOT EXISTS (SELECT 1 FROM ${claims} AS c WHERE ${claimKeyMatches('s.worker_id', 's.assigned_at')})`
    : '';
  return `INSERT INTO ${claims} (worker_id, assigned_at, id)
  SELECT coalesce(s.worker_id, ''), coalesce(s.assigned_at, '-infinity'), s.id FROM ${source} AS s WHERE s.state IN ${CLAIMED}${held}`;
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
  return `WITH stale_queue AS (
  DELETE FROM ${queue} AS q WHERE NOT EXISTS (
    SELECT 1 FROM ${jobs} AS j WHERE j.id = q.id AND j.state = 'QUEUED')
), stale_claims AS (
  DELETE FROM ${claims} AS c WHERE NOT EXISTS (
    SELECT 1 FROM ${jobs} AS j WHERE j.id = c.id AND j.state IN ${CLAIMED}
      AND coalesce(j.worker_id, '') = c.worker_id AND coalesce(j.assigned_at, '-infinity') = c.assigned_at)
)
SELECT 1`;
}
