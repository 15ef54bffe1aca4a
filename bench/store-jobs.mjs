// What the store benchmarks (store.mjs, store-statements.mjs) write: no-op jobs as the engine queues them, and
// audit events as the engine records them.
import { randomUUID } from 'node:crypto';

/** `count` QUEUED no-op jobs, created one millisecond apart from now (so the queue order is their index). */
export function noopJobs(count) {
  const now = Date.now();
  return Array.from({ length: count }, (_, index) => ({
    id: `j-${randomUUID()}`,
    spec: { name: `noop-${index}`, command: 'true', args: [], env: {}, labels: {}, maxAttempts: 1, priority: 0 },
    state: 'QUEUED',
    attempt: 1,
    epoch: 0,
    createdAt: now + index,
  }));
}

/**
 * An audit event of `eventType` about `correlationId`, at `occurredAt` (default now). The engine gives a job's
 * lifecycle events the time it writes with the change (job.queued: `createdAt`; job.started: `startedAt`; ...).
 */
export function audit(eventType, correlationId, details, occurredAt = Date.now()) {
  return { eventType, correlationId, occurredAt, details };
}
