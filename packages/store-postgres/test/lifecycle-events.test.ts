import type { AuditEvent } from '@hodei/core';
import { makeTestJob } from '@hodei/core/testing';
import { describe, expect, it } from 'vitest';
import { derivesQueued, proposeElision } from '../src/lifecycle-events';

const T = 1_700_000_000_000;
const at = (eventType: string, details: Record<string, unknown> | undefined, occurredAt = T, correlationId = 'job_1'): AuditEvent => ({
  eventType,
  correlationId,
  occurredAt,
  ...(details ? { details } : {}),
});
const assigned = at('job.assigned', { workerId: 'w_1', epoch: 2, attempt: 1 }, T + 1);
const started = at('job.started', { workerId: 'w_1', epoch: 2 }, T + 2);
const finished = at('job.finished', { state: 'SUCCEEDED', exitCode: null }, T + 3);

describe('derivesQueued', () => {
  const job = makeTestJob({ id: 'job_1', createdAt: T });

  it("is true only for the job's own job.queued at its creation time with exactly {name}", () => {
    expect(derivesQueued(job, at('job.queued', { name: job.spec.name }))).toBe(true);
    expect(derivesQueued(job, undefined)).toBe(false);
    expect(derivesQueued(job, at('job.queued', { name: 'other' }))).toBe(false);
    expect(derivesQueued(job, at('job.queued', { name: job.spec.name }, T + 1))).toBe(false);
    expect(derivesQueued(job, at('job.queued', { name: job.spec.name }, T, 'job_2'))).toBe(false);
    expect(derivesQueued(job, at('job.queued', { name: job.spec.name, extra: 1 }))).toBe(false);
    expect(derivesQueued(job, at('job.queued', undefined))).toBe(false);
    expect(derivesQueued(job, at('job.assigned', { name: job.spec.name }))).toBe(false);
  });
});

describe('proposeElision', () => {
  it('proposes assigned, started and finished together, with the values the row must hold', () => {
    expect(proposeElision('job_1', [assigned, started, finished])).toEqual({
      mask: 14,
      assignedAt: new Date(T + 1),
      startedAt: new Date(T + 2),
      completedAt: new Date(T + 3),
      workerId: 'w_1',
      epoch: 2,
      attempt: 1,
      state: 'SUCCEEDED',
      exitCode: null,
    });
    expect(proposeElision('job_1', [finished]).mask).toBe(8);
    expect(proposeElision('job_1', [at('job.finished', { state: 'FAILED', exitCode: 3 })]).exitCode).toBe(3);
  });

  it('proposes nothing unless every event of the call is derivable, in lifecycle order, once each', () => {
    const none = (events: AuditEvent[]) => proposeElision('job_1', events).mask;
    expect(none([])).toBe(0);
    expect(none([started, assigned])).toBe(0);
    expect(none([started, started])).toBe(0);
    expect(none([at('job.queued', { name: 'conformance' })])).toBe(0);
    expect(none([started, at('job.requeued', { attempt: 2 })])).toBe(0);
    expect(none([at('job.started', { workerId: 'w_1', epoch: 2 }, T, 'job_2')])).toBe(0);
    expect(none([at('job.started', { workerId: 'w_1', epoch: 2, extra: true })])).toBe(0);
    expect(none([at('job.started', { workerId: 'w_1' })])).toBe(0);
    expect(none([at('job.started', { workerId: 'w_1', epoch: 1.5 })])).toBe(0);
    expect(none([at('job.started', { workerId: 'w_1', epoch: 2 }, T + 0.5)])).toBe(0);
    expect(none([at('job.assigned', { workerId: 'w_1', epoch: 2, attempt: 2 ** 31 })])).toBe(0);
    expect(none([at('job.finished', { state: 'SUCCEEDED' })])).toBe(0);
    expect(none([at('job.finished', { state: 'SUCCEEDED', exitCode: '0' })])).toBe(0);
    // Assigned and started must name the same worker and epoch (the row holds one of each).
    expect(none([assigned, at('job.started', { workerId: 'w_2', epoch: 2 })])).toBe(0);
    expect(none([assigned, at('job.started', { workerId: 'w_1', epoch: 3 })])).toBe(0);
  });
});
