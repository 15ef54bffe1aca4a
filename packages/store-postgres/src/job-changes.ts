import { createHash } from 'node:crypto';
import { HodeiError, TERMINAL_JOB_STATES } from '@hodei/core';

/**
 * The NOTIFY channel on which the `jobs_state_changed` trigger (migration 2) announces a job's state change,
 * with the job id as payload: `hodei_job_changed_<schema>`, or a hash of the schema past 63 bytes. Must
 * match the trigger function's own computation.
 */
export function changedChannel(schema: string): string {
  const plain = `hodei_job_changed_${schema}`;
  return Buffer.byteLength(plain) <= 63
    ? plain
    : `hodei_job_changed_${createHash('sha256').update(schema, 'utf8').digest('hex').slice(0, 32)}`;
}

/**
 * The retention statement: deletes up to `$2` finished jobs completed before `$1`, the earliest created first,
 * found through the creation-time index of `jobs` (migration 8 took the state indexes off it): a job that
 * finished before `$1` was created before it, so the walk stops at `$1` and reads only jobs older than the
 * cutoff. Their log lines go with them (`ON DELETE CASCADE`). Rows another sweeper holds are skipped, so
 * concurrent sweeps by several engines do not wait on each other.
 */
export function deleteFinishedJobsSql(jobsTable: string): string {
  const states = [...TERMINAL_JOB_STATES].map((state) => `'${state}'`).join(', ');
  return `WITH due AS (
      SELECT id FROM ${jobsTable}
      WHERE created_at < $1 AND state IN (${states}) AND completed_at < $1
      ORDER BY created_at, insert_seq LIMIT $2
      FOR UPDATE SKIP LOCKED
    )
    DELETE FROM ${jobsTable} WHERE id IN (SELECT id FROM due) RETURNING id`;
}

/** Checks the arguments of `deleteFinishedJobs`. */
export function validateRetentionArguments(completedBefore: number, limit: number): void {
  if (typeof completedBefore !== 'number' || !Number.isFinite(completedBefore)) {
    throw new HodeiError('INVALID_ARGUMENT', 'deleteFinishedJobs: completedBefore must be a time in ms', { field: 'completedBefore' });
  }
  if (!Number.isInteger(limit) || limit < 0) {
    throw new HodeiError('INVALID_ARGUMENT', 'deleteFinishedJobs: limit must be a non-negative integer', { field: 'limit' });
  }
}
