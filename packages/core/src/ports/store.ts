import type { Job, JobState } from '../domain/job';
import type { Worker, WorkerState } from '../domain/worker';

/** Where a log line came from: the job's stdout or stderr, or `system` for lines the platform adds (the command line it runs, truncation and cancellation notices). */
export type LogStreamName = 'stdout' | 'stderr' | 'system';

/** One line of a job's output as stored: `seq` is per job, contiguous from 1, assigned by the store. */
export interface LogLine {
  /** Position in the job's log, contiguous from 1 across attempts. */
  seq: number;
  /** When the worker read the line, in milliseconds since the Unix epoch. */
  timestamp: number;
  /** Which stream the line came from. */
  stream: LogStreamName;
  /** The line without its trailing newline; secrets already masked. */
  text: string;
}

/** A line to append: the store assigns its `seq`. */
export type NewLogLine = Omit<LogLine, 'seq'>;

/**
 * Consecutive lines of one job packed column-wise (the form the worker sends them in): one string holds
 * every text, and flat arrays hold the lengths, timestamp deltas and streams. Moving a big log as batches
 * instead of one object per line is what keeps the garbage collector out of the way.
 */
export interface LogLineBatch {
  /** The seq of the first line; line `i` has seq `firstSeq + i`. */
  firstSeq: number;
  /** Every line's text, concatenated without separators. */
  text: string;
  /** Line `i`'s text is the next `textLengths[i]` UTF-16 code units of `text`; its length is the line count. */
  textLengths: readonly number[];
  /** The first line's timestamp, in milliseconds since the Unix epoch. */
  firstTimestamp: number;
  /** Each line's timestamp minus the previous line's (0 for the first line), in ms; as long as `textLengths`. */
  timestampDeltas: readonly number[];
  /** Each line's stream, or a single entry that applies to every line (empty for an empty batch). */
  streams: readonly LogStreamName[];
}

/** A batch to append: the store numbers its lines after the job's last one. */
export type NewLogLineBatch = Omit<LogLineBatch, 'firstSeq'>;

/** Which jobs {@link Store.listJobs} returns. */
export interface JobFilter {
  /** Only jobs in one of these states; all states when absent. */
  states?: readonly JobState[];
  /** Newest first; default 100. */
  limit?: number;
}

/** Compare-and-set guard: the update applies only when the record still matches. */
export interface JobGuard {
  /** The job must be in one of these states. */
  states?: readonly JobState[];
  /** The job's lease epoch must equal this. */
  epoch?: number;
  /**
   * Whether the job must hold a cancel request (`cancelRequestedAt` set): `false`, none; `true`, one. A server
   * puts a job back in the queue only while no cancel was asked of it, so that a cancel recorded meanwhile ends
   * the job instead of riding on to its next claim.
   */
  cancelRequested?: boolean;
}

/** What {@link Store.claimJobs} claims: the next queued jobs one worker can run. */
export interface JobClaim {
  /** The worker the jobs are assigned to. */
  workerId: string;
  /** The labels the worker offers: only jobs whose every label (key and value) it carries are claimed. */
  labels: Record<string, string>;
  /** Most jobs to claim: the worker's free slots. */
  limit: number;
  /**
   * The claim's time, in milliseconds since the Unix epoch: stored as each job's `assignedAt`; jobs whose
   * `notBefore` is later are backing off and skipped. Together with `workerId` it identifies the claim, so a
   * retried claim is recognised (see {@link Store.claimJobs}).
   */
  now: number;
}

/** Compare-and-set guard for {@link Store.updateWorker}: the update applies only when the worker still matches. */
export interface WorkerGuard {
  /** The worker must be in one of these states. */
  states?: readonly WorkerState[];
}

/** A one-time registration token as stored: only its hash, never the token itself. */
export interface StoredToken {
  /** SHA-256 of the token, hex-encoded. */
  hash: string;
  /** The worker the token was issued to; registration with another worker id is refused. */
  workerId: string;
  /** Expiry, in milliseconds since the Unix epoch. */
  expiresAt: number;
}

/** A record of something that happened to a job or worker (queued, assigned, lost …), kept for debugging. */
export interface AuditEvent {
  /** What happened, e.g. `job.queued`. */
  eventType: string;
  /** The job or worker id the event is about; {@link Store.listAudit} looks events up by it. */
  correlationId: string;
  /** When it happened, in milliseconds since the Unix epoch. */
  occurredAt: number;
  /** Event-specific data (JSON-serialisable). */
  details?: Record<string, unknown>;
}

/** What `Store.getJobAndLogCount` reads: a job and how many log lines it has stored. */
export interface JobAndLogCount {
  /** The job, as `getJob` reads it. */
  job: Job;
  /** Its stored line count: the seq of its last line (0 without lines), as `appendLogs(id, [])` returns it. */
  logCount: number;
}

/** What `Store.listWorkersAndQueue` reads: the workers in some states and the head of the queue. */
export interface WorkersAndQueue {
  /** As `listWorkers({ states })` returns them. */
  workers: Worker[];
  /** As `queuedJobs(limit)` returns them. */
  queuedJobs: Job[];
}

/**
 * Where jobs, workers, logs, tokens and audit events live. Every method is atomic on its own;
 * `updateJob` and `updateWorker` are compare-and-set so several engines may share one store.
 */
export interface Store {
  /** The version of this interface the store implements; always `'v1'` today. */
  readonly specificationVersion: 'v1';
  /** Short name for logs and metrics, e.g. `memory` or `postgres`. */
  readonly name: string;

  /**
   * Stores a new job; its `id` must be new. With `audit`, the event is recorded atomically with the job:
   * both or neither (no audit row can be lost or orphaned relative to the change it records).
   */
  insertJob(job: Job, audit?: AuditEvent): Promise<void>;
  /** The job with this id, or undefined. */
  getJob(id: string): Promise<Job | undefined>;
  /**
   * Optional: the job with this id and how many log lines it has stored (the seq of its last line, as
   * `appendLogs(id, [])` returns it), in one read; undefined for an unknown id. The engine reads both when it
   * stores a run's lines or result, and falls back to `getJob` and `appendLogs` without it.
   */
  getJobAndLogCount?(id: string): Promise<JobAndLogCount | undefined>;
  /** Jobs matching `filter`, newest first. */
  listJobs(filter?: JobFilter): Promise<Job[]>;
  /**
   * Optional: how many jobs the store holds in each state (a state none is in may be left out), without reading
   * the jobs, e.g. for a metrics gauge scraped every few seconds. Without it, callers count `listJobs`.
   */
  countJobsByState?(): Promise<Partial<Record<JobState, number>>>;
  /** QUEUED jobs in the order they should run: priority descending, then oldest first. */
  queuedJobs(limit: number): Promise<Job[]>;
  /**
   * Applies `patch` when the job matches `guard`; returns the updated job, or undefined if it did not match.
   * With `audit`, the event (or the events, in order: a change may record two, such as a short job's start and
   * end) is recorded atomically with the change, and only when the guard matched.
   */
  updateJob(id: string, guard: JobGuard, patch: Partial<Job>, audit?: AuditEvent | readonly AuditEvent[]): Promise<Job | undefined>;

  /**
   * Optional `updateJob` for a caller that knows the job already and need not read it back: resolves true when
   * the job matched `guard` and the patch (with its events) was written, false when it did not match. A store
   * whose write reads the row back anyway need not offer it; PostgresStore's statement then returns no column
   * but the id (a finished job's whole row was a sixth of the cost of its finish). The engine records a job's
   * result with it when the store has it.
   */
  compareAndSetJob?(id: string, guard: JobGuard, patch: Partial<Job>, audit?: AuditEvent | readonly AuditEvent[]): Promise<boolean>;

  /**
   * Optional multi-job claim: atomically takes up to `claim.limit` QUEUED jobs that are not backing off at
   * `claim.now` and whose labels the worker carries, in queue order (priority descending, then oldest first),
   * skipping jobs a concurrent claim holds (in SQL, `FOR UPDATE SKIP LOCKED`), and assigns each to the worker:
   * state ASSIGNED, `workerId`, `epoch + 1`, `assignedAt = now`, `notBefore` cleared. Records a `job.assigned`
   * audit event (details `{ workerId, epoch, attempt }`) with each, in the same atomic step. Returns the
   * claimed jobs in queue order; two concurrent claims never take the same job.
   *
   * Idempotent per (`workerId`, `now`): when jobs are already ASSIGNED to the worker with `assignedAt = now`,
   * they are returned and nothing more is claimed, so a claim retried after its reply was lost neither strands
   * the jobs its first attempt took nor takes more. The engine uses it when a
   * store has it, and compare-and-set `updateJob` calls otherwise.
   */
  claimJobs?(claim: JobClaim): Promise<Job[]>;

  /** Stores a new worker record; its `id` must be new. */
  insertWorker(worker: Worker): Promise<void>;
  /** The worker with this id, or undefined. */
  getWorker(id: string): Promise<Worker | undefined>;
  /** Workers, optionally only those in one of `filter.states`. */
  listWorkers(filter?: { states?: readonly WorkerState[] }): Promise<Worker[]>;
  /**
   * Optional: `listWorkers({ states: workerStates })` and `queuedJobs(queueLimit)` in one read (a scheduling
   * pass needs both); the engine makes the two calls without it.
   */
  listWorkersAndQueue?(workerStates: readonly WorkerState[], queueLimit: number): Promise<WorkersAndQueue>;
  /** Applies `patch` when the worker matches `guard`; returns the updated worker, or undefined if it did not match. */
  updateWorker(id: string, guard: WorkerGuard, patch: Partial<Worker>): Promise<Worker | undefined>;
  /**
   * Optional: adds `jobIds` to the worker's running jobs in one atomic step (after those it lists, in the order
   * given: the engine relies on the order, see `Worker.runningJobIds`), only while it is READY or BUSY (a
   * BUSY worker may still list jobs whose results it reported, not yet recorded, while it already has room:
   * its list then holds more jobs than its capacity for a while): it becomes BUSY when its running jobs then
   * fill its capacity (else READY), and its `idleSince` is cleared. Ids it already lists are not added again,
   * and when it lists them all it is returned unchanged whatever its state, so a call retried after its reply
   * was lost is recognised. Returns the updated worker; undefined when the worker is unknown, or neither READY
   * nor BUSY while some id is not listed yet. With no ids, the
   * worker as it is. The engine records a claim's jobs with it when a store has it, and with a read and a
   * compare-and-set `updateWorker` otherwise.
   */
  addRunningJobs?(workerId: string, jobIds: readonly string[]): Promise<Worker | undefined>;
  /**
   * Optional: removes `jobIds` from the worker's running jobs in one atomic step (whatever its state): a READY
   * or BUSY worker becomes BUSY when the jobs left still fill its capacity, else READY (other states are
   * kept), and `idleSince` becomes `now` (ms since the epoch) when no job is left. Returns the updated worker,
   * undefined for an unknown one; with no ids, the worker as it is. The engine frees a finished job's slot
   * with it when a store has it, and with a read and a compare-and-set `updateWorker` otherwise.
   */
  removeRunningJobs?(workerId: string, jobIds: readonly string[], now: number): Promise<Worker | undefined>;

  /** Appends lines in order and returns the seq of the last one. */
  appendLogs(jobId: string, lines: readonly NewLogLine[]): Promise<number>;
  /** Lines with seq >= fromSeq, at most `limit`, in order. */
  readLogs(jobId: string, fromSeq: number, limit: number): Promise<LogLine[]>;
  /**
   * Optional batch form of `appendLogs`: appends the batch's lines in order and returns the seq of the last
   * line stored. A store that keeps batches as they come avoids an object per line; the engine uses the
   * per-line method when a store lacks this one. Must agree with `appendLogs`/`readLogs` on the same job.
   */
  appendLogBatch?(jobId: string, batch: NewLogLineBatch): Promise<number>;
  /**
   * Optional batch form of `readLogs`: the lines with seq >= fromSeq, at most `maxLines`, as consecutive
   * batches in order (the first one starting at `fromSeq` when that line exists). Empty past the end.
   */
  readLogBatches?(jobId: string, fromSeq: number, maxLines: number): Promise<LogLineBatch[]>;

  /** Stores a one-time token's hash until it is consumed or expires. */
  saveToken(token: StoredToken): Promise<void>;
  /** Removes the token and returns it: a token can be consumed once. */
  consumeToken(hash: string): Promise<StoredToken | undefined>;

  /** Records an audit event. */
  appendAudit(event: AuditEvent): Promise<void>;
  /** The audit events about one job or worker, oldest first. */
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
   * `onJobQueued` (late, spurious or coalesced wake-ups are allowed; waiters read the store again). `state` is
   * the job's new state when the store knows it (a waiter that only needs the job's end then need not read
   * the job for a state that is not terminal).
   * `undefined` means any job may have changed (say, changes were missed while a connection was down).
   * Returns a function that unsubscribes.
   */
  onJobChanged?(listener: (jobId: string | undefined, state?: JobState) => void): () => void;

  /**
   * Optional retention: deletes at most `limit` jobs in a terminal state (SUCCEEDED, FAILED, CANCELLED,
   * TIMED_OUT) whose `completedAt` is before `completedBefore` (ms since the epoch), the earliest created first
   * (a job that finished before the cutoff was created before it, so a store can find them by creation time),
   * with their log lines. Audit events are kept (they are the record of what happened). Returns how many jobs it
   * deleted.
   */
  deleteFinishedJobs?(completedBefore: number, limit: number): Promise<number>;

  /** Releases the store's resources (connections, timers); the store is unusable afterwards. */
  close(): Promise<void>;
}
