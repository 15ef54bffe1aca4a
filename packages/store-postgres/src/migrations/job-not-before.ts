import type { Migration } from './index';

/**
 * Version 3: `jobs.not_before`, the earliest time a re-queued job may run again (the end of its retry
 * backoff), NULL when it need not wait. Stored so that every server sharing the database, and a restarted
 * one, waits out a backoff another engine started. The queue's order and index are unchanged: a backing-off
 * job keeps its place and is skipped by the scheduler until then.
 */
export const jobNotBeforeMigration: Migration = {
  version: 3,
  name: 'job retry backoff end (not_before)',
  sql: (s) => `ALTER TABLE ${s}.jobs ADD COLUMN not_before timestamptz;`,
};
