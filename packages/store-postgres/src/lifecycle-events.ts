import type { AuditEvent, Job } from '@hodei/core';

/*
 * Which audit events PostgresStore may leave unwritten because the job's row gives them back exactly (the
 * `audit_logs` view of migration 6 derives them). Pure: the store proposes, and its statements check the
 * proposal against the row as written (the values a patch does not set live only in the database).
 */

/** The bit of each lifecycle event in `jobs.derived_events` (migration 6). */
export const LIFECYCLE_BITS: Readonly<Record<string, number>> = {
  'job.queued': 1,
  'job.assigned': 2,
  'job.started': 4,
  'job.finished': 8,
};

/** The exact keys of each derivable event's details, in no particular order. */
const DETAIL_KEYS: Readonly<Record<string, readonly string[]>> = {
  'job.queued': ['name'],
  'job.assigned': ['workerId', 'epoch', 'attempt'],
  'job.started': ['workerId', 'epoch'],
  'job.finished': ['state', 'exitCode'],
};

const INT4_MIN = -(2 ** 31);
const INT4_MAX = 2 ** 31 - 1;

function isInt4(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= INT4_MIN && value <= INT4_MAX;
}

/** The event's details when they have exactly the keys its type derives (none undefined), else undefined. */
function exactDetails(event: AuditEvent): Record<string, unknown> | undefined {
  const keys = DETAIL_KEYS[event.eventType];
  const details = event.details;
  if (!keys || !details || typeof details !== 'object' || Array.isArray(details)) return undefined;
  const own = Object.keys(details);
  if (own.length !== keys.length || !keys.every((key) => own.includes(key) && details[key] !== undefined)) return undefined;
  return details;
}

/** A time the row can hold exactly: a finite number of milliseconds. */
function isTime(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && Number.isInteger(value);
}

/** True when `event` is the job.queued event the row of `job` gives back: its id, `createdAt` and `{name}`. */
export function derivesQueued(job: Job, event: AuditEvent | undefined): boolean {
  if (!event || event.eventType !== 'job.queued' || event.correlationId !== job.id) return false;
  if (!isTime(event.occurredAt) || event.occurredAt !== job.createdAt) return false;
  const details = exactDetails(event);
  return details !== undefined && typeof details.name === 'string' && details.name === job.spec.name;
}

/**
 * The lifecycle events of one `updateJob` call the store proposes not to write (`mask`, 0 for none), with the
 * values the updated row must hold for them (each event's time and details), for the statement to check. All
 * or none: every event of the call must be job.assigned, job.started or job.finished of this job, in that
 * order, at most one of each, with details of exactly their shape (and the same worker and epoch when both
 * job.assigned and job.started are given).
 */
export interface ElisionProposal {
  mask: number;
  assignedAt: Date | null;
  startedAt: Date | null;
  completedAt: Date | null;
  workerId: string | null;
  epoch: number | null;
  attempt: number | null;
  state: string | null;
  exitCode: number | null;
}

const NONE: ElisionProposal = {
  mask: 0,
  assignedAt: null,
  startedAt: null,
  completedAt: null,
  workerId: null,
  epoch: null,
  attempt: null,
  state: null,
  exitCode: null,
};

/** See {@link ElisionProposal}. */
export function proposeElision(jobId: string, events: readonly AuditEvent[]): ElisionProposal {
  if (events.length === 0) return NONE;
  const proposal: ElisionProposal = { ...NONE };
  let last = 1;
  for (const event of events) {
    const bit = LIFECYCLE_BITS[event.eventType];
    if (bit === undefined || bit <= last || event.correlationId !== jobId || !isTime(event.occurredAt)) return NONE;
    const details = exactDetails(event);
    if (!details) return NONE;
    last = bit;
    proposal.mask |= bit;
    const at = new Date(event.occurredAt);
    if (event.eventType === 'job.finished') {
      const exitCode = details.exitCode;
      if (typeof details.state !== 'string' || (exitCode !== null && !isInt4(exitCode))) return NONE;
      proposal.completedAt = at;
      proposal.state = details.state;
      proposal.exitCode = exitCode;
      continue;
    }
    const { workerId, epoch } = details;
    if (typeof workerId !== 'string' || !isInt4(epoch)) return NONE;
    if ((proposal.workerId !== null && proposal.workerId !== workerId) || (proposal.epoch !== null && proposal.epoch !== epoch)) return NONE;
    proposal.workerId = workerId;
    proposal.epoch = epoch;
    if (event.eventType === 'job.assigned') {
      if (!isInt4(details.attempt)) return NONE;
      proposal.assignedAt = at;
      proposal.attempt = details.attempt;
    } else {
      proposal.startedAt = at;
    }
  }
  return proposal;
}
