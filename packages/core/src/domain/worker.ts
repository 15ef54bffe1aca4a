import type { TransitionTable } from './state-machine';

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

export const LIVE_WORKER_STATES: ReadonlySet<WorkerState> = new Set([
  'CREATING',
  'CONNECTING',
  'READY',
  'BUSY',
  'DRAINING',
  'TERMINATING',
]);

export interface Worker {
  id: string;
  provider: string;
  state: WorkerState;
  capacity: number;
  runningJobIds: string[];
  labels: Record<string, string>;
  createdAt: number;
  /** When the worker last proved it is alive (registration or heartbeat). */
  lastHeartbeat?: number;
  /** When the worker last had no job; drives the idle timeout. */
  idleSince?: number;
  sessionTokenHash?: string;
  endedReason?: string;
}
