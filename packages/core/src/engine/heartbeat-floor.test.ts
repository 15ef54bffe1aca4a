import { describe, expect, it } from 'vitest';
import type { Worker } from '../domain/worker';
import { forgivingFloor, withHeartbeatFloor } from './heartbeat-floor';

const worker = (lastHeartbeat?: number): Worker => ({
  id: 'w',
  provider: 'p',
  state: 'READY',
  capacity: 1,
  runningJobIds: [],
  labels: {},
  createdAt: 0,
  ...(lastHeartbeat === undefined ? {} : { lastHeartbeat }),
});

describe('withHeartbeatFloor', () => {
  it('raises an older heartbeat to the floor, keeps a newer one, and leaves a worker that never sent one', () => {
    expect(withHeartbeatFloor(worker(100), 500).lastHeartbeat).toBe(500);
    expect(withHeartbeatFloor(worker(900), 500).lastHeartbeat).toBe(900);
    expect(withHeartbeatFloor(worker(), 500)).not.toHaveProperty('lastHeartbeat');
  });
});

describe('forgivingFloor', () => {
  it('forgives as much silence as the outage lasted: a worker gets that long again to be heard from, no more', () => {
    // A 7 s outage ending at 100 s with a 4 s timeout: silent only past 107 s.
    expect(forgivingFloor(100_000, 4_000, 7_000) + 4_000).toBe(107_000);
    // A 100 ms blip forgives 100 ms: a worker silent for long is still past the timeout right after it.
    expect(forgivingFloor(100_000, 4_000, 100) + 4_000).toBe(100_100);
  });
});
