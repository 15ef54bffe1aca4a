import type { TransitionTable } from './state-machine';

export const JOB_STATES = ['QUEUED', 'ASSIGNED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'CANCELLED'] as const;
export type JobState = (typeof JOB_STATES)[number];

export const TERMINAL_JOB_STATES: ReadonlySet<JobState> = new Set(['SUCCEEDED', 'FAILED', 'TIMED_OUT', 'CANCELLED']);

/** The job state machine. A lost worker sends ASSIGNED/RUNNING back to QUEUED when attempts remain. */
export const JOB_TRANSITIONS: TransitionTable<JobState> = {
  QUEUED: ['ASSIGNED', 'CANCELLED', 'FAILED'],
  ASSIGNED: ['RUNNING', 'QUEUED', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'CANCELLED'],
  RUNNING: ['SUCCEEDED', 'FAILED', 'TIMED_OUT', 'CANCELLED', 'QUEUED'],
  SUCCEEDED: [],
  FAILED: [],
  TIMED_OUT: [],
  CANCELLED: [],
};

export function isTerminalJobState(state: JobState): boolean {
  return TERMINAL_JOB_STATES.has(state);
}

/** Why a job failed when the failure is the platform's, not the command's exit code. */
export type FailureReason = 'EXIT_CODE' | 'WORKER_LOST' | 'FAILED_TO_START' | 'PROVISIONING_FAILED' | 'SHUTDOWN';

export interface ScriptSpec {
  interpreter: string;
  content: string;
}

/** A validated job specification (see `validateJobSpec`). */
export interface JobSpec {
  name: string;
  command?: string;
  args: string[];
  script?: ScriptSpec;
  env: Record<string, string>;
  /** Names of `env` entries whose values are secret (masked in logs, hidden from clients). */
  secretEnv: string[];
  workingDir?: string;
  timeoutMs: number;
  labels: Record<string, string>;
  maxAttempts: number;
  priority: number;
  /** Exit codes after which the job is re-queued (with backoff) while attempts remain. Absent: never. */
  retryOnExitCodes?: number[];
}

/** What a caller passes to `queue()`: everything but `name` and one of `command`/`script` is optional. */
export interface JobSpecInput {
  name: string;
  command?: string;
  args?: string[];
  script?: { interpreter?: string; content: string };
  env?: Record<string, string>;
  /**
   * Names of `env` entries whose values are secret: replaced by `***` in every log line and never returned
   * by `get`/`list`. Names ending in `_TOKEN`, `_SECRET`, `_PASSWORD` or `_KEY` are secret anyway.
   */
  secretEnv?: string[];
  workingDir?: string;
  timeoutMs?: number;
  /** Labels a worker must carry (all of them) to run this job. */
  labels?: Record<string, string>;
  maxAttempts?: number;
  /** Higher runs first. */
  priority?: number;
  /** Exit codes after which the job is re-queued (attempt + 1, with backoff) while `maxAttempts` allows. */
  retryOnExitCodes?: number[];
}

export interface Job {
  id: string;
  spec: JobSpec;
  state: JobState;
  /** 1 for the first run; grows when the job is re-queued after a lost worker. */
  attempt: number;
  /** Lease epoch: grows on every assignment; messages carrying an older epoch are refused. */
  epoch: number;
  workerId?: string;
  createdAt: number;
  assignedAt?: number;
  startedAt?: number;
  completedAt?: number;
  exitCode?: number;
  signal?: string;
  errorMessage?: string;
  failureReason?: FailureReason;
  durationMs?: number;
  cancelRequestedAt?: number;
}
