import type { Migration } from './index';

/**
 * Version 5: audit events are found by correlation id through a hash index instead of the btree
 * `audit_logs_correlation_idx (correlation_id, occurred_at, id)` of migration 1. Every job write records an
 * audit event, so each one paid a btree insert that compares text keys on its way down; a hash index insert
 * hashes the key once. `listAudit` (one correlation id, a handful of events, sorted by time and id) and the
 * operators' `WHERE correlation_id = ... ORDER BY occurred_at` read the few matching rows through it and sort
 * them. Measured on the store's batched job updates (each writes its audit row): about 5-8 % less
 * PostgreSQL execution per updated job and 7 % less WAL. On a large `audit_logs` writes to the table wait
 * while the new index builds (about 1 s per million events); the old index is dropped after it, so reads
 * are held only at the end.
 */
export const auditCorrelationHashMigration: Migration = {
  version: 5,
  name: 'audit events by correlation id through a hash index',
  sql: (s) => `
CREATE INDEX IF NOT EXISTS audit_logs_correlation_hash_idx ON ${s}.audit_logs USING hash (correlation_id);
DROP INDEX IF EXISTS ${s}.audit_logs_correlation_idx;
`,
};
