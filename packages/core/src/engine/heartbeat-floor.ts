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
 * The floor that forgives `forgivenMs` of silence ending `now` (an outage of the store, or this process standing
 * still, that long), for a heartbeat timeout of `timeoutMs`: a worker then has as long again after it to be heard
 * from before it counts as silent, and no more (frequent short outages forgive little, so a dead worker is still
 * found lost). See `withHeartbeatFloor`.
 */
export function forgivingFloor(now: number, timeoutMs: number, forgivenMs: number): number {
  return now - timeoutMs + forgivenMs;
}

/**
 * Watches for the engine's own process standing still (a laptop asleep, a paused VM, SIGSTOP, a blocked event
 * loop): `check()`, called often, returns how long it stood still when more than `stallMs` passed since the
 * previous call (on the monotonic clock), else 0, so that nobody's silence over that time is held against them.
 */
export class StallWatch {
  private last = performance.now();

  constructor(private readonly stallMs: number) {}

  check(): number {
    const now = performance.now();
    const gap = now - this.last;
    this.last = now;
    return gap > this.stallMs ? gap : 0;
  }
}
