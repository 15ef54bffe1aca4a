import type { TransitionTable } from './state-machine';

/** Every worker state, in lifecycle order: `CREATING → CONNECTING → READY ⇄ BUSY → (DRAINING →) TERMINATING → TERMINATED`, or `LOST`. */
export const WORKER_STATES = [
  'CREATING',
  'CONNECTING',
  'READY',
  'BUSY',
  'DRAINING',
  'TERMINATING',
  'TERMINATED',
  'LOST',
] as const;
/** A worker's lifecycle state (see {@link WORKER_STATES} and {@link WORKER_TRANSITIONS}). */
export type WorkerState = (typeof WORKER_STATES)[number];

/** The worker state machine. Any live state may become LOST when heartbeats stop or the process dies. */
export const WORKER_TRANSITIONS: TransitionTable<WorkerState> = {
  CREATING: ['CONNECTING', 'TERMINATING', 'TERMINATED', 'LOST'],
  CONNECTING: ['READY', 'TERMINATING', 'TERMINATED', 'LOST'],
  READY: ['BUSY', 'DRAINING', 'TERMINATING', 'LOST'],
  BUSY: ['READY', 'DRAINING', 'TERMINATING', 'LOST'],
  DRAINING: ['TERMINATING', 'TERMINATED', 'LOST'],
  TERMINATING: ['TERMINATED', 'LOST'],
  TERMINATED: [],
  LOST: ['TERMINATED'],
};

/** The states of a worker that exists or is being started: everything but `TERMINATED` and `LOST`. */
export const LIVE_WORKER_STATES: ReadonlySet<WorkerState> = new Set([
  'CREATING',
  'CONNECTING',
  'READY',
  'BUSY',
  'DRAINING',
  'TERMINATING',
]);

/** A worker as the store records it. Timestamps are milliseconds since the Unix epoch. */
export interface Worker {
  /** Unique id the engine assigned when it asked the provider for the worker. */
  id: string;
  /** Name of the provider that started it. */
  provider: string;
  /** Current lifecycle state. */
  state: WorkerState;
  /**
   * Jobs it may hold at once: those it runs at once (its slots), plus the prefetch the engine granted it at
   * registration (jobs it holds beyond its slots and starts as they free; 0 without prefetch).
   */
  capacity: number;
  /**
   * Jobs assigned to it and not yet finished, in the order they were assigned (the order it was sent them). It
   * may list more than `capacity` for a while: a job stays listed until its result is recorded, and the engine
   * sends the worker more jobs as soon as it reports results (it freed their places when they ended).
   */
  runningJobIds: string[];
  /** Labels it carries (its provider's plus its own); jobs select workers by them. */
  labels: Record<string, string>;
  /** When the engine asked for it. */
  createdAt: number;
  /** When the worker last proved it is alive (registration or heartbeat). */
  lastHeartbeat?: number;
  /** When the worker last had no job; drives the idle timeout. */
  idleSince?: number;
  /** SHA-256 of its session token; never returned to clients. */
  sessionTokenHash?: string;
  /** Why it ended (idle, lost, failed to start …), once TERMINATED or LOST. */
  endedReason?: string;
}
