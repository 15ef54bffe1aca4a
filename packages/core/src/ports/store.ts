import type { Job, JobState } from '../domain/job';
import type { Worker, WorkerState } from '../domain/worker';

export type LogStreamName = 'stdout' | 'stderr' | 'system';

/** One line of a job's output as stored: `seq` is per job, contiguous from 1, assigned by the store. */
export interface LogLine {
  seq: number;
  timestamp: number;
  stream: LogStreamName;
  text: string;
}

export type NewLogLine = Omit<LogLine, 'seq'>;

export interface JobFilter {
  states?: readonly JobState[];
  /** Newest first; default 100. */
  limit?: number;
}

/** Compare-and-set guard: the update applies only when the record still matches. */
export interface JobGuard {
  states?: readonly JobState[];
  epoch?: number;
}

export interface WorkerGuard {
  states?: readonly WorkerState[];
}

export interface StoredToken {
  hash: string;
  workerId: string;
  expiresAt: number;
}

export interface AuditEvent {
  eventType: string;
  correlationId: string;
  occurredAt: number;
  details?: Record<string, unknown>;
}

/**
 * Where jobs, workers, logs, tokens and audit events live. Every method is atomic on its own;
 * `updateJob` and `updateWorker` are compare-and-set so several engines may share one store.
 */
export interface Store {
  readonly specificationVersion: 'v1';
  readonly name: string;

  insertJob(job: Job): Promise<void>;
  getJob(id: string): Promise<Job | undefined>;
  listJobs(filter?: JobFilter): Promise<Job[]>;
  /** QUEUED jobs in the order they should run: priority descending, then oldest first. */
  queuedJobs(limit: number): Promise<Job[]>;
  /** Applies `patch` when the job matches `guard`; returns the updated job, or undefined if it did not match. */
  updateJob(id: string, guard: JobGuard, patch: Partial<Job>): Promise<Job | undefined>;

  insertWorker(worker: Worker): Promise<void>;
  getWorker(id: string): Promise<Worker | undefined>;
  listWorkers(filter?: { states?: readonly WorkerState[] }): Promise<Worker[]>;
  updateWorker(id: string, guard: WorkerGuard, patch: Partial<Worker>): Promise<Worker | undefined>;

  /** Appends lines in order and returns the seq of the last one. */
  appendLogs(jobId: string, lines: readonly NewLogLine[]): Promise<number>;
  /** Lines with seq >= fromSeq, at most `limit`, in order. */
  readLogs(jobId: string, fromSeq: number, limit: number): Promise<LogLine[]>;

  saveToken(token: StoredToken): Promise<void>;
  /** Removes the token and returns it: a token can be consumed once. */
  consumeToken(hash: string): Promise<StoredToken | undefined>;

  appendAudit(event: AuditEvent): Promise<void>;
  listAudit(correlationId: string): Promise<AuditEvent[]>;

  /**
   * Optional wake-up: calls `listener` soon after a job is queued (or goes back to QUEUED), possibly by
   * another engine sharing the store. A hint only (it may be late, spurious or coalesced); engines keep
   * polling as a fallback. Returns a function that unsubscribes.
   */
  onJobQueued?(listener: () => void): () => void;

  /**
   * Optional: calls `listener` with a job's id soon after its state changes, by this engine or another one
   * sharing the store, so a client waiting on the job through any server learns of it. A hint, like
   * `onJobQueued` (late, spurious or coalesced wake-ups are allowed; waiters read the store again).
   * `undefined` means any job may have changed (say, changes were missed while a connection was down).
   * Returns a function that unsubscribes.
   */
  onJobChanged?(listener: (jobId: string | undefined) => void): () => void;

  /**
   * Optional retention: deletes at most `limit` jobs in a terminal state (SUCCEEDED, FAILED, CANCELLED,
   * TIMED_OUT) whose `completedAt` is before `completedBefore` (ms since the epoch), oldest first, with their
   * log lines. Audit events are kept (they are the record of what happened). Returns how many jobs it deleted.
   */
  deleteFinishedJobs?(completedBefore: number, limit: number): Promise<number>;

  close(): Promise<void>;
}
