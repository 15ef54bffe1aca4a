import type { Job } from '../domain/job';

/**
 * Of the jobs a worker held (ASSIGNED or RUNNING to it) when it was lost or the server stopped, the ids of those
 * that may have started, whose attempt counts when they go back to the queue. `held`: the jobs in the order its
 * record lists them, which is the order they were sent in; `slots`: how many it runs at once, undefined when
 * it holds no more than its capacity (no prefetch) or when they are not known.
 *
 * A worker with prefetch holds more jobs than its slots and starts them in the order they came, so the started
 * ones are a prefix of that order: every RUNNING job and the jobs sent before it, and the first `slots` jobs
 * (their starts may not have been reported yet). The others waited on the worker and never started: their
 * attempt is not counted. One that did start, after jobs before it ended with results the server never got,
 * is not recognised and runs again with the same attempt number. Without `slots`, every job counts, as without
 * prefetch (where a worker never holds more jobs than its slots).
 */
export function heldJobsThatMayHaveStarted(held: readonly Job[], slots: number | undefined): Set<string> {
  if (slots === undefined) return new Set(held.map((job) => job.id));
  let prefix = Math.min(held.length, Math.max(0, slots));
  held.forEach((job, index) => {
    if (job.state === 'RUNNING') prefix = Math.max(prefix, index + 1);
  });
  return new Set(held.slice(0, prefix).map((job) => job.id));
}
