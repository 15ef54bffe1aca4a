import type { Migration } from './index';

/**
 * Version 7: the store's own statements announce a job's state change themselves, so the per-row trigger of
 * migration 2 (a plpgsql call and a NOTIFY queued for each changed row) no longer runs for them.
 *
 * - `hodei_job_changed_channel()`: the schema's change channel (as migration 2's trigger computes it), an
 *   IMMUTABLE constant the statements pass to `pg_notify` with each changed job's id.
 * - The trigger `jobs_state_changed` keeps covering every other writer (an operator's `UPDATE`, another
 *   program): it is skipped only on a session that set `hodei.notify_by_statement = on`, which PostgresStore
 *   does on the connections of a pool it made, whose every state-changing statement notifies. On a pool
 *   passed in, both may notify: PostgreSQL delivers identical notifications of one transaction once.
 */
export const statementNotifyMigration: Migration = {
  version: 7,
  name: 'job change NOTIFY from the store statements (hodei_job_changed_channel)',
  sql: (s) => `
DO $do$
DECLARE
  schema_name text := (SELECT nspname FROM pg_namespace WHERE oid = '${s.replaceAll("'", "''")}'::regnamespace);
  channel text := 'hodei_job_changed_' || schema_name;
BEGIN
  IF octet_length(channel) > 63 THEN
    channel := 'hodei_job_changed_' || left(encode(sha256(convert_to(schema_name, 'UTF8')), 'hex'), 32);
  END IF;
  EXECUTE format('CREATE FUNCTION %s.hodei_job_changed_channel() RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS %L',
    '${s.replaceAll("'", "''")}', 'SELECT ' || quote_literal(channel));
END;
$do$;

DROP TRIGGER jobs_state_changed ON ${s}.jobs;
CREATE TRIGGER jobs_state_changed AFTER UPDATE OF state ON ${s}.jobs
  FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state AND current_setting('hodei.notify_by_statement', true) IS DISTINCT FROM 'on')
  EXECUTE FUNCTION ${s}.hodei_notify_job_changed();
`,
};
