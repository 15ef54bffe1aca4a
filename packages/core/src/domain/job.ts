import type { TransitionTable } from './state-machine';

/** Every job state, in lifecycle order: `QUEUED → ASSIGNED → RUNNING →` one of the four terminal states. */
export const JOB_STATES = ['QUEUED', 'ASSIGNED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'CANCELLED'] as const;
/** A job's lifecycle state (see {@link JOB_STATES} and {@link JOB_TRANSITIONS}). */
export type JobState = (typeof JOB_STATES)[number];

/** The states a job never leaves: `SUCCEEDED`, `FAILED`, `TIMED_OUT`, `CANCELLED`. */
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

/** True when `state` is terminal (the job has finished and will not run again). */
export function isTerminalJobState(state: JobState): boolean {
  return TERMINAL_JOB_STATES.has(state);
}

/** Why a job failed when the failure is the platform's, not the command's exit code. */
export type FailureReason = 'EXIT_CODE' | 'WORKER_LOST' | 'FAILED_TO_START' | 'PROVISIONING_FAILED' | 'SHUTDOWN';

/** A script job: `content` is written to a temporary file and run by `interpreter`. */
export interface ScriptSpec {
  /** The program that runs the script, with optional space-separated arguments (e.g. `python3 -u`); the script file is its last argument. */
  interpreter: string;
  /** The script's text. */
  content: string;
}

/** A validated job specification (see `validateJobSpec`). */
export interface JobSpec {
  /** Human-readable name, 1 to 256 characters; not unique. */
  name: string;
  /** Shell command run with `/bin/bash -c`; exactly one of `command` and `script` is set. */
  command?: string;
  /** Arguments appended to `command`, each shell-quoted (empty for scripts). */
  args: string[];
  /** The script to run instead of a `command`. */
  script?: ScriptSpec;
  /** Environment variables added to the worker's environment for this job. */
  env: Record<string, string>;
  /** Names of `env` entries whose values are secret (masked in logs, hidden from clients). */
  secretEnv: string[];
  /** Directory the job runs in; the worker's own working directory when absent. */
  workingDir?: string;
  /** Wall-clock limit of one attempt in milliseconds (default one hour, at most seven days); past it the job ends `TIMED_OUT`. */
  timeoutMs: number;
  /** Labels a worker must carry (all of them) to run this job. */
  labels: Record<string, string>;
  /** How many times the job may run in total (default 1, at most 100); a lost worker or a listed exit code uses one. */
  maxAttempts: number;
  /** Higher runs first (default 0, between -1 000 000 and 1 000 000); equal priorities run oldest first. */
  priority: number;
  /** Exit codes after which the job is re-queued (with backoff) while attempts remain. Absent: never. */
  retryOnExitCodes?: number[];
}

/** What a caller passes to `queue()`: everything but `name` and one of `command`/`script` is optional. */
export interface JobSpecInput {
  /** Human-readable name, 1 to 256 characters; required. */
  name: string;
  /** Shell command run with `/bin/bash -c`; give either this or `script`. */
  command?: string;
  /** Arguments appended to `command`, each shell-quoted so they reach the program verbatim; not allowed with `script`. */
  args?: string[];
  /** A script to run instead of a `command`: `content` run by `interpreter` (default `/bin/bash`). */
  script?: { interpreter?: string; content: string };
  /** Environment variables for the job; names must match `[A-Za-z_][A-Za-z0-9_]*`. */
  env?: Record<string, string>;
  /**
   * Names of `env` entries whose values are secret: replaced by `***` in every log line and never returned
   * by `get`/`list`. Names ending in `_TOKEN`, `_SECRET`, `_PASSWORD` or `_KEY` are secret anyway.
   */
  secretEnv?: string[];
  /** Directory the job runs in, on the worker's machine. */
  workingDir?: string;
  /**
   * Wall-clock limit of one attempt in milliseconds; default one hour ({@link DEFAULT_JOB_TIMEOUT_MS}), at most
   * seven days. There is no "no timeout": 0, like leaving it out, means the default.
   */
  timeoutMs?: number;
  /** Labels a worker must carry (all of them) to run this job. */
  labels?: Record<string, string>;
  /** How many times the job may run in total; default 1 (no retry), at most 100. 0, like leaving it out, means the default. */
  maxAttempts?: number;
  /** Higher runs first. */
  priority?: number;
  /** Exit codes after which the job is re-queued (attempt + 1, with backoff) while `maxAttempts` allows. */
  retryOnExitCodes?: number[];
}

/** A job as the store and the client see it: its validated spec, where it is in its lifecycle and how it ended. Timestamps are milliseconds since the Unix epoch. */
export interface Job {
  /** Unique id assigned when the job is queued. */
  id: string;
  /** The validated spec; secret env values are `***` when read through the client. */
  spec: JobSpec;
  /** Current lifecycle state. */
  state: JobState;
  /** 1 for the first run; grows when the job is re-queued after a lost worker. */
  attempt: number;
  /** Lease epoch: grows on every assignment; messages carrying an older epoch are refused. */
  epoch: number;
  /** The worker running (or that last ran) the job. */
  workerId?: string;
  /** When the job was queued. */
  createdAt: number;
  /** When the current attempt was assigned to a worker. */
  assignedAt?: number;
  /** When the current attempt's process started on the worker. */
  startedAt?: number;
  /** When the job reached a terminal state. */
  completedAt?: number;
  /** The command's exit code, when it exited on its own. */
  exitCode?: number;
  /** The signal that ended the command (e.g. `SIGKILL`), when one did. */
  signal?: string;
  /** Why the job failed, timed out or was cancelled, in words. */
  errorMessage?: string;
  /** Set when a `FAILED` job failed for a platform reason rather than its exit code. */
  failureReason?: FailureReason;
  /** How long the last attempt ran on the worker, in milliseconds. */
  durationMs?: number;
  /** When `cancel()` was asked for; the job ends `CANCELLED` once the worker has stopped it. */
  cancelRequestedAt?: number;
  /**
   * Set when the job is re-queued: the earliest time it may run again (the end of its retry backoff). Every
   * engine sharing the store, and a restarted one, waits it out. Cleared when the job is assigned.
   */
  notBefore?: number;
}

/** `job` with `patch` applied as a store writes it: a field the patch sets to undefined is removed. */
export function withJobPatch(job: Job, patch: Partial<Job>): Job {
  const next: Record<string, unknown> = { ...job, ...patch };
  for (const [key, value] of Object.entries(patch)) if (value === undefined) delete next[key];
  return next as unknown as Job;
}
