import type { Migration } from './index';

/**
 * Version 2: a job's state change is announced with `NOTIFY` (payload: the job id), so a client waiting on
 * the job through any server sharing the database learns of its end; and an index for the retention sweep
 * (finished jobs by completion time, a partial index that holds no queued or running job).
 *
 * The channel is `hodei_job_changed_<schema>`, or with a hash of the schema when that exceeds PostgreSQL's
 * 63-byte identifier limit (see `changedChannel`). A trigger (rather than each UPDATE statement) keeps every
 * writer of `jobs.state` covered.
 */
export const jobChangesMigration: Migration = {
  version: 2,
  name: 'job change notifications and retention index',
  sql: (s) => `
CREATE FUNCTION ${s}.hodei_notify_job_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  channel text := 'hodei_job_changed_' || TG_TABLE_SCHEMA;
BEGIN
  IF octet_length(channel) > 63 THEN
    channel := 'hodei_job_changed_' || left(encode(sha256(convert_to(TG_TABLE_SCHEMA, 'UTF8')), 'hex'), 32);
  END IF;
  PERFORM pg_notify(channel, NEW.id);
  RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_state_changed AFTER UPDATE OF state ON ${s}.jobs
  FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
  EXECUTE FUNCTION ${s}.hodei_notify_job_changed();

-- Retention: finished jobs by completion time (queued and running jobs are not in it).
CREATE INDEX jobs_finished_idx ON ${s}.jobs (completed_at)
  WHERE state IN ('SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT');
`,
};
