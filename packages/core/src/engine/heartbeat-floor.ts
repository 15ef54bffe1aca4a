import type { Worker } from '../domain/worker';

/**
 * The worker as the heartbeat timeout judges it: its stored `lastHeartbeat` raised to `floor`, a time before which
 * its silence says nothing (this engine heard from it since, or could hear no one: its own process stood still,
 * or the store was unreachable, so the heartbeats it stored are late). A worker that never sent one (CREATING,
 * CONNECTING: the provisioning timeout judges it) is left as it is.
 */
export function withHeartbeatFloor(worker: Worker, floor: number): Worker {
  if (worker.lastHeartbeat === undefined || worker.lastHeartbeat >= floor) return worker;
  return { ...worker, lastHeartbeat: floor };
}

/**
 * Watches for the engine's own process standing still (a laptop asleep, a paused VM, SIGSTOP, a blocked event
 * loop): `check()`, called often, returns true when more than `stallMs` passed since the previous call (on the
 * monotonic clock), so that nobody's silence over that time is held against them.
 */
export class StallWatch {
  private last = performance.now();

  constructor(private readonly stallMs: number) {}

  check(): boolean {
    const now = performance.now();
    const stalled = now - this.last > this.stallMs;
    this.last = now;
    return stalled;
  }
}
