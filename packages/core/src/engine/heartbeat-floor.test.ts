import { describe, expect, it } from 'vitest';
import type { Worker } from '../domain/worker';
import { withHeartbeatFloor } from './heartbeat-floor';

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
