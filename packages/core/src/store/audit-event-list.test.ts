import { describe, expect, it } from 'vitest';
import type { AuditEvent } from '../ports/store';
import { toAuditEventList } from './audit-event-list';

const event = (eventType: string): AuditEvent => ({ eventType, correlationId: 'job_1', occurredAt: 1 });

describe('toAuditEventList', () => {
  it('gives no events for undefined', () => {
    expect(toAuditEventList(undefined)).toEqual([]);
  });

  it('gives one event as a list of one', () => {
    const started = event('job.started');
    expect(toAuditEventList(started)).toEqual([started]);
  });

  it('gives a list as it is, in its order (empty included)', () => {
    const events = [event('job.started'), event('job.finished')];
    expect(toAuditEventList(events)).toBe(events);
    expect(toAuditEventList([])).toEqual([]);
  });
});
