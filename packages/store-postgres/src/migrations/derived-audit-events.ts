import type { Migration } from './index';

/**
 * A job's four lifecycle events as rows `(bit, event_type, occurred_at, details)`, derived from the columns of
 * the jobs row `r`, exactly as the engine writes them: job.queued `{name}` at `created_at`, job.assigned
 * `{workerId, epoch, attempt}` at `assigned_at`, job.started `{workerId, epoch}` at `started_at`, job.finished
 * `{state, exitCode}` at `completed_at`. Written out here (not shared with the store's code): a released
 * migration must not change when the code does.
 */
const lifecycleEvents = (r: string): string => `(VALUES
    (1::smallint, 'job.queued', ${r}.created_at, jsonb_build_object('name', ${r}.spec -> 'name')),
    (2::smallint, 'job.assigned', ${r}.assigned_at, jsonb_build_object('workerId', ${r}.worker_id, 'epoch', ${r}.epoch, 'attempt', ${r}.attempt)),
    (4::smallint, 'job.started', ${r}.started_at, jsonb_build_object('workerId', ${r}.worker_id, 'epoch', ${r}.epoch)),
    (8::smallint, 'job.finished', ${r}.completed_at, jsonb_build_object('state', ${r}.state, 'exitCode', ${r}.exit_code))
  ) AS e(bit, event_type, occurred_at, details)`;

/**
 * Version 6: a job's lifecycle audit events are derived from its row instead of written as rows, when they can
 * be rebuilt from it exactly.
 *
 * - `jobs.derived_events`: a bitmask of the lifecycle events of the job that have no row of their own (1
 *   job.queued, 2 job.assigned, 4 job.started, 8 job.finished). PostgresStore sets a bit only when the event it
 *   was given is exactly what the row's columns give (type, the job id as correlation id, time, details);
 *   anything else is written as a row, as before. Existing jobs have no bit set.
 * - The table of written events becomes `audit_log_rows` (same ids, columns and hash index), and `audit_logs`
 *   a view: those rows UNION ALL each job's derived events (id NULL). A query by correlation id reads the rows
 *   through the hash index and the job through its primary key.
 * - The derived events are written as rows ("sealed"), from the old values, by a BEFORE trigger whenever a
 *   job's row is about to lose what they derive from: an update that changes one of their columns (a re-queue
 *   clears the worker and times of the attempt), an update that clears bits (a store statement writing another
 *   event of the job as a row: every earlier event of a job is then a row, so ids order events of one
 *   millisecond as they were written), and a delete (the retention sweep keeps the audit history). The
 *   trigger's WHEN is false on the common path (a claim or a finish adds bits without touching the columns of
 *   those already set), so it costs no function call there; an update that sets none of the columns it reads
 *   (a log append bumping `log_count`) does not even evaluate the WHEN.
 * - Rows inserted into the `audit_logs` view (by servers of the previous release, which still write every
 *   event there during a rolling upgrade, or by anything else) go to `audit_log_rows` through an INSTEAD OF
 *   trigger, which first seals the job's derived events, as the store does before writing a job's event as a
 *   row, so that ids keep the order events were written in.
 */
export const derivedAuditEventsMigration: Migration = {
  version: 6,
  name: 'lifecycle audit events derived from the job row (audit_logs view)',
  sql: (s) => `
ALTER TABLE ${s}.audit_logs RENAME TO audit_log_rows;
ALTER INDEX ${s}.audit_logs_correlation_hash_idx RENAME TO audit_log_rows_correlation_hash_idx;
ALTER TABLE ${s}.jobs ADD COLUMN derived_events smallint NOT NULL DEFAULT 0;

CREATE VIEW ${s}.audit_logs AS
  SELECT r.id, r.event_type, r.correlation_id, r.occurred_at, r.details FROM ${s}.audit_log_rows AS r
  UNION ALL
  SELECT NULL::bigint, e.event_type, j.id, e.occurred_at, e.details
  FROM ${s}.jobs AS j CROSS JOIN LATERAL ${lifecycleEvents('j')}
  WHERE j.derived_events <> 0 AND (j.derived_events & e.bit) <> 0;

CREATE FUNCTION ${s}.hodei_seal_derived_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO ${s}.audit_log_rows (event_type, correlation_id, occurred_at, details)
  SELECT e.event_type, OLD.id, e.occurred_at, e.details
  FROM ${lifecycleEvents('OLD')}
  WHERE (OLD.derived_events & e.bit) <> 0
  ORDER BY e.bit;
  IF TG_OP = 'DELETE' THEN
    RETURN OLD;
  END IF;
  NEW.derived_events := NEW.derived_events & ~OLD.derived_events;
  RETURN NEW;
END;
$$;

CREATE TRIGGER jobs_seal_derived_events
  BEFORE UPDATE OF created_at, spec, assigned_at, worker_id, epoch, attempt, started_at, completed_at, state, exit_code, derived_events
  ON ${s}.jobs
  FOR EACH ROW WHEN (OLD.derived_events <> 0 AND (
    (OLD.derived_events & ~NEW.derived_events) <> 0
    OR ((OLD.derived_events & 1) <> 0 AND (OLD.created_at, OLD.spec -> 'name') IS DISTINCT FROM (NEW.created_at, NEW.spec -> 'name'))
    OR ((OLD.derived_events & 2) <> 0 AND (OLD.assigned_at, OLD.worker_id, OLD.epoch, OLD.attempt) IS DISTINCT FROM (NEW.assigned_at, NEW.worker_id, NEW.epoch, NEW.attempt))
    OR ((OLD.derived_events & 4) <> 0 AND (OLD.started_at, OLD.worker_id, OLD.epoch) IS DISTINCT FROM (NEW.started_at, NEW.worker_id, NEW.epoch))
    OR ((OLD.derived_events & 8) <> 0 AND (OLD.completed_at, OLD.state, OLD.exit_code) IS DISTINCT FROM (NEW.completed_at, NEW.state, NEW.exit_code))
  ))
  EXECUTE FUNCTION ${s}.hodei_seal_derived_events();

CREATE TRIGGER jobs_seal_derived_events_on_delete BEFORE DELETE ON ${s}.jobs
  FOR EACH ROW WHEN (OLD.derived_events <> 0)
  EXECUTE FUNCTION ${s}.hodei_seal_derived_events();

CREATE FUNCTION ${s}.hodei_insert_audit_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE ${s}.jobs SET derived_events = 0 WHERE id = NEW.correlation_id AND derived_events <> 0;
  INSERT INTO ${s}.audit_log_rows (event_type, correlation_id, occurred_at, details)
  VALUES (NEW.event_type, NEW.correlation_id, NEW.occurred_at, NEW.details)
  RETURNING id INTO NEW.id;
  RETURN NEW;
END;
$$;

CREATE TRIGGER audit_logs_insert INSTEAD OF INSERT ON ${s}.audit_logs
  FOR EACH ROW EXECUTE FUNCTION ${s}.hodei_insert_audit_log();
`,
};
