import { AUDIT_INSERT_COLUMNS, JOB_RETURNED_COLUMNS } from './batch-sql';
import { queueOrder } from './live-rows-sql';

/*
 * SQL of PostgresStore.claimJobs: the next queued jobs one worker can run, locked with FOR UPDATE SKIP LOCKED
 * (concurrent claims, from this engine or another one on the same database, skip each other's rows instead of
 * waiting for them or failing a compare-and-set), assigned and audited in one statement.
 */

/**
 * One statement that claims up to `$3` jobs for worker `$1` whose labels `$2` (jsonb) contains, at time `$4`
 * (timestamptz): the head of `job_queue` (migration 8: queue order, not backing off at `$4`, labels), locked
 * `FOR UPDATE SKIP LOCKED` and deleted. Each of those jobs still QUEUED and not backing off by its own row (a
 * queue row that outlived its job's state, or its stint in the queue, is dropped and its job left alone) becomes
 * ASSIGNED to the worker with epoch + 1, `assigned_at = $4` and no `not_before`, gets its `job_claims` row, and
 * a `job.assigned` audit event: derived from its row (bit 2 of
 * `derived_events`, migration 6) unless a later lifecycle event of the job already is, and only then written as
 * a row. Each claimed job's id is NOTIFYed on the change channel by the statement (migration 7). When jobs are
 * already ASSIGNED to `$1` at exactly `$4` (this claim committed, its reply was lost, and it is retried), those
 * are returned (found through `job_claims`) and nothing more is claimed. Returns the job columns plus
 * `hodei_priority` and `hodei_insert_seq`.
 *
 * The limit counts queue rows: a row left behind by a race (see live-rows-sql.ts) is taken and dropped, so that
 * claim comes back short by one, and the next takes the job's own row.
 *
 * The ids travel as `= ANY(ARRAY(...))`: with `IN (...)` or a join, the planner hash-joins a claim of hundreds of
 * jobs against a scan of the whole queue and history (8 of 14 ms at 20,000 jobs, bench/experiments).
 */
export function claimJobsSql(schema: string, jobs: string, audit: string, queue: string, claims: string): string {
  const returned = [...JOB_RETURNED_COLUMNS.map((column) => `j.${column}`), 'j.priority AS hodei_priority', 'j.insert_seq AS hodei_insert_seq'];
  return `WITH already AS (
  SELECT ${returned.join(', ')} FROM ${jobs} AS j
  WHERE j.id = ANY(ARRAY(SELECT c.id FROM ${claims} AS c WHERE c.worker_id = $1::text AND c.assigned_at = $4::timestamptz))
    AND j.state = 'ASSIGNED' AND j.worker_id = $1::text AND j.assigned_at = $4::timestamptz
), picked AS (
  DELETE FROM ${queue} AS q WHERE q.ctid = ANY(ARRAY(
    SELECT h.ctid FROM ${queue} AS h
    WHERE (h.not_before IS NULL OR h.not_before <= $4::timestamptz) AND h.labels <@ $2::jsonb
    ORDER BY ${queueOrder('h')}
    LIMIT CASE WHEN EXISTS (SELECT 1 FROM already) THEN 0 ELSE $3::integer END
    FOR UPDATE SKIP LOCKED
  ))
  RETURNING q.id
), claimed AS (
  UPDATE ${jobs} AS j SET state = 'ASSIGNED', worker_id = $1, epoch = j.epoch + 1, assigned_at = $4, not_before = NULL,
    derived_events = CASE WHEN j.derived_events < 2 THEN j.derived_events | 2 ELSE 0 END
  WHERE j.id = ANY(ARRAY(SELECT picked.id FROM picked)) AND j.state = 'QUEUED' AND (j.not_before IS NULL OR j.not_before <= $4::timestamptz)
  RETURNING ${returned.join(', ')}
), held AS (
  INSERT INTO ${claims} (worker_id, assigned_at, id) SELECT $1, $4, c.id FROM claimed AS c
), audited AS (
  INSERT INTO ${audit} ${AUDIT_INSERT_COLUMNS}
  SELECT 'job.assigned', c.id, $4, jsonb_build_object('workerId', $1::text, 'epoch', c.epoch, 'attempt', c.attempt)
  FROM claimed AS c WHERE (c.derived_events & 2) = 0
)
SELECT * FROM already
UNION ALL
SELECT * FROM claimed WHERE (SELECT count(pg_notify(${schema}.hodei_job_changed_channel(), n.id)) FROM claimed AS n) >= 0
ORDER BY hodei_priority DESC, created_at ASC, hodei_insert_seq ASC`;
}
