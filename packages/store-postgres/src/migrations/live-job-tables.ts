import type { Migration } from './index';

/*
 * The store's own statements keep job_queue and job_claims (PostgresStore sets hodei.live_rows_by_statement on
 * the connections of a pool it made); this trigger keeps them for every other writer of `jobs`: a server of the
 * previous release during a rolling upgrade, an operator's UPDATE, a pool passed in to the store (there both
 * run, and the trigger's writes find the store's already done). Written out here, not shared with the store's
 * code: a released migration must not change when the code does.
 */
const keepLiveRows = (s: string): string => `
CREATE FUNCTION ${s}.hodei_keep_live_rows() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  was_queued boolean := false;
  is_queued boolean := false;
BEGIN
  IF TG_OP <> 'INSERT' THEN
    was_queued := OLD.state = 'QUEUED';
  END IF;
  IF TG_OP <> 'DELETE' THEN
    is_queued := NEW.state = 'QUEUED';
  END IF;
  -- The rows of a job that was or is QUEUED go, and a QUEUED job gets a new row: never one left behind (which a
  -- sweep or a claim that judged it stale may still delete), nor one changed in place. A queue row a claim holds
  -- is left to it (SKIP LOCKED): that claim deletes it, and assigns the job only if it is still QUEUED and due once
  -- this change is done, which the new row then stands for. Waiting for it could deadlock: the claim waits for
  -- this job's row lock. On a pool passed to the store, whose statements wrote the row already, one is left.
  IF was_queued OR is_queued THEN
    DELETE FROM ${s}.job_queue AS q WHERE q.ctid = ANY(ARRAY(
      SELECT h.ctid FROM ${s}.job_queue AS h
      WHERE h.priority = coalesce(OLD.priority, NEW.priority) AND h.created_at = coalesce(OLD.created_at, NEW.created_at)
        AND h.insert_seq = coalesce(OLD.insert_seq, NEW.insert_seq)
      FOR UPDATE SKIP LOCKED));
    IF is_queued THEN
      INSERT INTO ${s}.job_queue (priority, created_at, insert_seq, id, not_before, labels)
      VALUES (NEW.priority, NEW.created_at, NEW.insert_seq, NEW.id, NEW.not_before, coalesce(NEW.spec -> 'labels', '{}'));
    END IF;
  END IF;
  -- Claim rows likewise: the old key's go, and a claimed job gets a row of its own.
  IF TG_OP <> 'INSERT' THEN
    IF OLD.state IN ('ASSIGNED', 'RUNNING') THEN
      DELETE FROM ${s}.job_claims AS c
      WHERE c.worker_id = coalesce(OLD.worker_id, '') AND c.assigned_at = coalesce(OLD.assigned_at, '-infinity') AND c.id = OLD.id;
    END IF;
  END IF;
  IF TG_OP <> 'DELETE' THEN
    IF NEW.state IN ('ASSIGNED', 'RUNNING') THEN
      DELETE FROM ${s}.job_claims AS c
      WHERE c.worker_id = coalesce(NEW.worker_id, '') AND c.assigned_at = coalesce(NEW.assigned_at, '-infinity') AND c.id = NEW.id;
      INSERT INTO ${s}.job_claims (worker_id, assigned_at, id)
      VALUES (coalesce(NEW.worker_id, ''), coalesce(NEW.assigned_at, '-infinity'), NEW.id);
    END IF;
  END IF;
  RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_live_rows_inserted AFTER INSERT ON ${s}.jobs
  FOR EACH ROW WHEN (current_setting('hodei.live_rows_by_statement', true) IS DISTINCT FROM 'on')
  EXECUTE FUNCTION ${s}.hodei_keep_live_rows();

CREATE TRIGGER jobs_live_rows_deleted AFTER DELETE ON ${s}.jobs
  FOR EACH ROW WHEN (current_setting('hodei.live_rows_by_statement', true) IS DISTINCT FROM 'on' AND OLD.state IN ('QUEUED', 'ASSIGNED', 'RUNNING'))
  EXECUTE FUNCTION ${s}.hodei_keep_live_rows();

CREATE TRIGGER jobs_live_rows_updated AFTER UPDATE OF state, worker_id, assigned_at, not_before ON ${s}.jobs
  FOR EACH ROW WHEN (current_setting('hodei.live_rows_by_statement', true) IS DISTINCT FROM 'on'
    AND (OLD.state, OLD.worker_id, OLD.assigned_at, OLD.not_before) IS DISTINCT FROM (NEW.state, NEW.worker_id, NEW.assigned_at, NEW.not_before))
  EXECUTE FUNCTION ${s}.hodei_keep_live_rows();
`;

/**
 * Version 8: the live jobs move out of the indexes of `jobs`, so that the updates of a job's life (claim, start,
 * finish, log count) are HOT: they change no indexed column, and PostgreSQL writes no index entry for them.
 *
 * - `job_queue`: one row per QUEUED job (its queue order, `not_before` and labels), whose only index is the
 *   queue order. A claim takes its rows with `FOR UPDATE SKIP LOCKED` and deletes them; a job leaving QUEUED
 *   otherwise (a cancel) has its row deleted through the order key its `jobs` row holds.
 * - `job_claims`: one row per claimed job (ASSIGNED or RUNNING): its worker, claim time and id, one index on
 *   those three. A claim appends them, the statement ending or moving the job deletes them through its `jobs`
 *   row's worker and claim time. The stranded sweep, the live listings and a claim retried after a lost reply
 *   read it (bounded by the jobs in flight) and `jobs` by id.
 * - `jobs` loses the indexes on its state (the queue, state-and-time, finished, assigned-worker indexes) and
 *   keeps its primary key and creation-time index, columns that never change; its fillfactor becomes 30, the
 *   room on each page its rows' updates need to stay HOT (measured in bench/experiments: at 30 every update of
 *   a 20,000-job run was HOT, at 50 55-77 %). It applies to the pages written from now on.
 * - Readers recheck each row against `jobs` (state, worker, claim time), so a row of either table that
 *   outlived its job's state is skipped, never trusted; the retention sweep deletes such rows.
 * - The trigger above keeps both tables for writers other than the store's statements.
 *
 * `hodei_next_queued_jobs` (migration 4) stays for the servers of the previous release during a rolling
 * upgrade (it now reads `jobs` without an index: slow, still right).
 */
export const liveJobTablesMigration: Migration = {
  version: 8,
  name: 'live jobs in job_queue and job_claims; HOT updates of jobs',
  sql: (s) => `
CREATE TABLE ${s}.job_queue (
  priority   integer NOT NULL,
  created_at timestamptz NOT NULL,
  insert_seq bigint NOT NULL,
  id         text NOT NULL,
  not_before timestamptz,
  labels     jsonb NOT NULL
);
-- Not unique: a job re-queued gets a new row even while one left behind by a race is still there.
CREATE INDEX job_queue_order_idx ON ${s}.job_queue (priority DESC, created_at ASC, insert_seq ASC);

-- A job claimed without a worker or claim time (inserted so) is keyed '' and -infinity: no NULL in the key.
CREATE TABLE ${s}.job_claims (
  worker_id   text NOT NULL,
  assigned_at timestamptz NOT NULL,
  id          text NOT NULL
);
CREATE INDEX job_claims_key_idx ON ${s}.job_claims (worker_id, assigned_at, id);

-- Every lock this migration needs, first: the DROP INDEX below needs ACCESS EXCLUSIVE, and a weaker lock taken
-- first deadlocks with a server of the previous release reading jobs in between.
LOCK TABLE ${s}.jobs IN ACCESS EXCLUSIVE MODE;
INSERT INTO ${s}.job_queue (priority, created_at, insert_seq, id, not_before, labels)
  SELECT priority, created_at, insert_seq, id, not_before, coalesce(spec -> 'labels', '{}') FROM ${s}.jobs WHERE state = 'QUEUED';
INSERT INTO ${s}.job_claims (worker_id, assigned_at, id)
  SELECT coalesce(worker_id, ''), coalesce(assigned_at, '-infinity'), id FROM ${s}.jobs WHERE state IN ('ASSIGNED', 'RUNNING');
${keepLiveRows(s)}
-- The ids of the first p_limit QUEUED jobs in queue order: the queue rows in the order of their index, each
-- rechecked against its job (one primary-key lookup per row, a sub-select run as the rows come) before the limit,
-- so a row left behind by a race does not take a queued job's place. Written so on purpose: as a join, the
-- planner, misled by statistics from before a burst of inserts (few QUEUED jobs), scanned the history and
-- hash-joined it with the whole queue (20 ms at 20,000 jobs), or nested-looped the other way round (seconds);
-- and with sorts off (as migration 4's function), it walks the queue index instead of sorting the queue.
CREATE FUNCTION ${s}.hodei_queue_head(p_limit integer) RETURNS SETOF text
LANGUAGE sql STABLE
ROWS 100
SET enable_sort = off
AS $body$
  SELECT h.id FROM (SELECT q.id FROM ${s}.job_queue AS q ORDER BY q.priority DESC, q.created_at ASC, q.insert_seq ASC OFFSET 0) AS h
  WHERE (SELECT j.state FROM ${s}.jobs AS j WHERE j.id = h.id) = 'QUEUED'
  LIMIT p_limit
$body$;

DROP INDEX ${s}.jobs_queue_idx;
DROP INDEX ${s}.jobs_state_created_idx;
DROP INDEX ${s}.jobs_finished_idx;
DROP INDEX ${s}.jobs_assigned_worker_idx;
ALTER TABLE ${s}.jobs SET (fillfactor = 30);
`,
};
