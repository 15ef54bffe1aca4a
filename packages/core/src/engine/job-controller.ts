import { HodeiError } from '../domain/errors';
import { finalJobPatch, startTime, type FinishedReport } from '../domain/job-outcome';
import { isTerminalJobState, withJobPatch, type FailureReason, type Job, type JobState } from '../domain/job';
import { validateJobSpec } from '../domain/job-spec';
import { assertTransition } from '../domain/state-machine';
import { LIVE_WORKER_STATES, WORKER_TRANSITIONS, type Worker } from '../domain/worker';
import type { Clock } from '../ports/clock';
import type { Logger } from '../ports/logger';
import type { EngineObserver } from '../ports/observer';
import type { Provider } from '../ports/provider';
import type { AuditEvent, JobFilter, JobGuard, LogLineBatch, NewLogLine, NewLogLineBatch, Store } from '../ports/store';
import { logLineBatchCount, packLogLineBatch, sliceLogLineBatch, unpackLogLineBatch } from '../store/log-line-batch';
import { ChangeNotifier, type JobChange } from './change-notifier';
import type { EngineConfig } from './engine-config';
import { retryBackoffMs } from './retry-backoff';
import {
  decide,
  isAvailable,
  isSilent,
  mayStartWorker,
  nextBackoffEnd,
  plan,
  queueDemandBound,
  withReportedResultsFreed,
  workerRoom,
  type Decision,
  type SchedulerSnapshot,
} from './scheduler';
import { KeyedSerialQueue, SerialQueue } from './serial-queue';
import { strandedAssignments } from './stranded-assignments';
import { forgivingFloor, StallWatch, withHeartbeatFloor } from './heartbeat-floor';
import { withStoreRetry } from './store-retry';
import { hashToken, newId, newToken } from './tokens';
import { heldJobsThatMayHaveStarted } from './held-jobs';
import type { Registration, RegistrationGrant, WorkerChannel } from './worker-channel';
import { WorkerRegistry, type Credentials } from './worker-registry';

const LIVE = [...LIVE_WORKER_STATES];
/**
 * How many of the session-token hashes it issued a worker an engine keeps (see `issuedTokens`): more than one, as
 * two authentications of a worker may overlap and the store keep either's hash, or a failed write have landed.
 */
const KEPT_TOKEN_HASHES = 4;
/** The timestamps a job write takes from the clock, by which the engine recognises its own in-doubt write. */
type InDoubtStamp = 'assignedAt' | 'startedAt' | 'notBefore' | 'completedAt';
const ACTIVE_JOB = ['ASSIGNED', 'RUNNING'] as const;
/** States a worker may reconnect in (with its session token) after its stream broke. */
const RECONNECTABLE: Worker['state'][] = ['READY', 'BUSY', 'DRAINING'];

/** The slots a registration names: its capacity, when positive. */
function registeredSlots(registration: Registration): number | undefined {
  return registration.capacity && registration.capacity > 0 ? registration.capacity : undefined;
}

/**
 * The result of a run that failed (exit code or signal) after a cancel was requested: the job ends CANCELLED (the
 * user asked for that), keeping the run's exit code, duration and signal, instead of FAILED or being retried.
 */
function cancelledInsteadOfFailed(patch: ReturnType<typeof finalJobPatch>): ReturnType<typeof finalJobPatch> {
  const { failureReason: _exitCode, ...rest } = patch;
  return { ...rest, state: 'CANCELLED', errorMessage: cancelledAfterExit(patch) };
}
/** Why a job whose command failed after its cancel was requested ended CANCELLED. */
function cancelledAfterExit(patch: Pick<Job, 'exitCode' | 'signal'>): string {
  const ended = patch.signal ? `was killed by ${patch.signal}` : `exited with code ${patch.exitCode}`;
  return `cancelled; the command ${ended} after the cancel was requested`;
}
/** What a change to `state` is to a job's waiters: `any` when the job may have ended or the state is unknown. */
function changeOf(state: JobState | undefined): JobChange {
  return state === undefined || isTerminalJobState(state) ? 'any' : 'state';
}
/**
 * How many heartbeats of a reconnected worker must leave out a job cancelled while it was away before the job
 * is taken as never received (see `endCancelledNotHeld`).
 */
const UNLISTED_HEARTBEATS_BEFORE_UNSTARTED = 2;
/** How many times `cancel` looks again at a job that moved on between its read and its write. */
const CANCEL_TRIES = 5;
/** How often the engine checks that its own process did not stand still (see `StallWatch`). */
const STALL_CHECK_MS = 500;

/** A gap between two such checks longer than this means the process stood still (or its event loop was blocked). */
const STALL_MS = 2_000;

/** How soon a pass whose claims came up short (another engine took the jobs) is followed by another. */
const CLAIM_SHORTFALL_RETRY_MS = 10;
/**
 * The most queued jobs (from the head of the queue) a scheduling pass reads (see `planQueueHead`). Past them a free worker still
 * gets work (see `claimBeyondWindow`), but no worker is started for a job further back until the head moves.
 */
const QUEUE_WINDOW = 10_000;
/**
 * The fewest queued jobs a scheduling pass reads first (see `planQueueHead`): a few more than the one slot a
 * finished job frees, so that a job backing off at the head rarely costs a second read.
 */
const QUEUE_FIRST_READ = 4;
/**
 * The most queued jobs a scheduling pass reads together with the workers (`Store.listWorkersAndQueue`, which
 * PostgresStore returns as one JSON value): a pass that may fill more slots reads its first page on its own, so
 * that hundreds of large job specs never make one value.
 */
const FUSED_QUEUE_READ_MAX = 64;
/** How much further each read of the queue's head goes than the one before, while slots stay free (see `planQueueHead`). */
const QUEUE_READ_GROWTH = 16;
/** How often a scheduling pass also looks for ASSIGNED jobs that can no longer be delivered (see `requeueStranded`). */
const STRANDED_SWEEP_MS = 5_000;
/** Failed worker starts in a row before the jobs waiting on that provider are failed. */
const PROVISIONING_ATTEMPTS = 3;

/**
 * Waits for every task, then throws the first failure, if any: a pass whose claim for one worker failed still
 * lets the other workers' claims finish recording and sending their jobs before it ends.
 */
async function allSettledOrThrow<T>(tasks: readonly Promise<T>[]): Promise<T[]> {
  const settled = await Promise.allSettled(tasks);
  const failed = settled.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((outcome) => (outcome as PromiseFulfilledResult<T>).value);
}

/** What a {@link JobController} runs on; {@link createPlatform} fills these in. */
export interface JobControllerOptions {
  /** Where jobs, workers and logs live. */
  store: Store;
  /** Where workers come from; each must have a distinct `name`. */
  providers: readonly Provider[];
  /** Time source; {@link systemClock} in production. */
  clock: Clock;
  /** Where the engine logs; {@link silentLogger} to log nothing. */
  logger: Logger;
  /** Timeouts and intervals; see {@link resolveEngineConfig}. */
  config: EngineConfig;
  /** host:port workers connect back to; known once the server is bound. */
  serverAddress: () => string;
  /** Metrics and tracing hooks. */
  observer?: EngineObserver;
  /** The CA (PEM) workers must trust when the server speaks TLS; handed to providers with each new worker. */
  workerTlsCa?: string;
}

/**
 * The event loop of the platform: it reacts to queued jobs, registrations, results and lost workers by
 * taking a snapshot, asking the pure scheduler what to do, and applying its decisions. State changes run
 * one at a time; every job update is compare-and-set on state and lease epoch.
 */
export class JobController {
  /** Woken with a job id whenever that job changes (state or new log lines); log and watch streams wait on it. */
  readonly notifier = new ChangeNotifier();
  /** The store given, wrapped so that calls failing with `UNAVAILABLE` are retried with backoff (see `withStoreRetry`). */
  readonly store: Store;
  private readonly registry: WorkerRegistry;
  private readonly providers: Map<string, Provider>;
  private readonly channels = new Map<string, WorkerChannel>();
  /** Workers this engine provisioned: several engines may share a store, each schedules only its own. */
  private readonly ownWorkers = new Set<string>();
  /**
   * How many jobs each worker registered here runs at once, when its record's `capacity` also counts the
   * prefetch it was granted (the jobs it may hold beyond its slots): the scheduler starts workers rather than
   * fill prefetch room, and a lost worker's jobs that never started are re-queued without counting an attempt.
   */
  private readonly workerSlots = new Map<string, number>();
  /** The workers connected here that were granted a prefetch (> 0) at their last registration or reconnection. */
  private readonly prefetchingWorkers = new Set<string>();
  /**
   * Per worker, the jobs whose results it reported and this engine is recording: their slots are free on the
   * worker, so the scheduler counts them free already (see `withReportedResultsFreed`).
   */
  private readonly reportedResults = new Map<string, Set<string>>();
  /**
   * The record of each worker as this engine last wrote it (its claims and releases, in its `workerRecords`
   * queue): whether a reported result frees room enough to refill it, without a read (a hint: a pass reads it).
   */
  private readonly lastWorkerRecord = new Map<string, Worker>();
  /** Per worker, the finished jobs whose slots its next release in `workerRecords` frees, and that release. */
  private readonly pendingReleases = new Map<string, { jobIds: string[]; released: Promise<Worker | undefined> }>();
  /**
   * The hashes of the session tokens this engine issued each worker, oldest first: the last few it issued
   * ({@link KEPT_TOKEN_HASHES}), those being issued included. Every authentication issues a new one, so a worker
   * whose record holds another hash was authenticated by another server since: it reconnected there and reports
   * through it (see `reconnectedElsewhere`). A hash this engine drew can only be this engine's (256 random bits),
   * so keeping one too many is never wrong, while dropping the one the record holds makes this engine's worker
   * look like another server's.
   */
  private readonly issuedTokens = new Map<string, Set<string>>();
  /**
   * For each worker of this engine, the cancels recorded here while its stream was down: each job's lease epoch
   * then, so that its reconnection cancels that lease only (see `afterReconnect`).
   */
  private readonly cancelsAwaitingReconnect = new Map<string, Map<string, number>>();
  /**
   * For each reconnected worker, its ASSIGNED jobs cancelled while it was away (each with its lease epoch and how
   * many of its heartbeats since did not list it): told to stop, and ended here if it does not hold them (see
   * `endCancelledNotHeld`).
   */
  private readonly cancelsAwaitingHeartbeat = new Map<string, Map<string, { epoch: number; unlisted: number }>>();
  private readonly serial = new SerialQueue();
  private readonly unsubscribes: (() => void)[] = [];
  private readonly provisioningFailures = new Map<string, { count: number; retryAt: number }>();
  /** The pass scheduled for when the first queued job's retry backoff (its stored `notBefore`) ends. */
  private backoffWake: { at: number; timer: NodeJS.Timeout } | undefined;
  /**
   * Read-modify-writes of one worker's record (its list of running jobs: claims add to it, results and lost
   * workers take from it) run one at a time, so that results need not wait for the serial section.
   */
  private readonly workerRecords = new KeyedSerialQueue();
  /** Each worker's last claim time: the next claim for it takes a later one (see `claimNow`). */
  private readonly lastClaimAt = new Map<string, number>();
  /** Appends of one job run one at a time (a reconnected worker's resend may overlap its old stream's). */
  private readonly logAppends = new KeyedSerialQueue();
  private tickTimer: NodeJS.Timeout | undefined;
  /** How many queued jobs the last pass read first: the next pass reads that many with the workers (see `planQueueHead`). */
  private lastFirstRead = QUEUE_FIRST_READ;
  /** When a pass next looks for stranded assignments (the first pass does). */
  private nextStrandedSweepAt = 0;
  private reconcileRequested = false;
  private reconciling = false;
  private stopped = false;
  /** Set by `drain()`: no new job is accepted, assigned or provisioned for. */
  private draining = false;

  /**
   * The least `lastHeartbeat` a worker is judged by (see `withHeartbeatFloor`): raised when the store answered again
   * after an outage (the heartbeats written meanwhile carry the time their call began), or when this process stood
   * still, by as much as that lasted (see `forgivingFloor`).
   */
  private silenceFloor = 0;
  /** When this engine last heard a heartbeat of each of its connected workers (the store's copy may lag). */
  private readonly heartbeatsHeard = new Map<string, number>();
  private readonly stallWatch = new StallWatch(STALL_MS);
  private stallTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: JobControllerOptions) {
    this.store = withStoreRetry(options.store, { logger: options.logger, onReachableAgain: (downMs) => this.forgiveSilence(downMs) });
    this.registry = new WorkerRegistry(this.store, options.clock, { otpTtlMs: options.config.otpTtlMs });
    this.providers = new Map(options.providers.map((provider) => [provider.name, provider]));
  }

  /** Starts scheduling: removes orphaned workers its providers report, subscribes to worker exits and starts the periodic tick. */
  async start(): Promise<void> {
    const live = await this.store.listWorkers({ states: LIVE });
    for (const provider of this.providers.values()) {
      const ids = live.filter((worker) => worker.provider === provider.name).map((worker) => worker.id);
      await provider.reconcile?.(ids).catch((error: unknown) => {
        this.options.logger.warn({ err: error, provider: provider.name }, 'could not remove orphaned workers');
      });
    }
    for (const provider of this.providers.values()) {
      this.unsubscribes.push(
        provider.onWorkerExit((exit) => void this.workerExited(exit.workerId, exit.reason).catch(this.logFailure('worker exit'))),
      );
    }
    // Another engine sharing the store may queue jobs: wake up when the store says so (polling stays the fallback).
    const offQueued = this.store.onJobQueued?.(() => this.wake());
    if (offQueued) this.unsubscribes.push(offQueued);
    // Another engine may change a job a client waits on here (Watch, wait()): wake the waiters.
    const offChanged = this.store.onJobChanged?.((jobId, state) =>
      jobId === undefined ? this.notifier.notifyAll() : this.notifier.notify(jobId, changeOf(state)),
    );
    if (offChanged) this.unsubscribes.push(offChanged);
    this.tickTimer = setInterval(() => this.wake(), this.options.config.pollIntervalMs);
    this.tickTimer.unref();
    this.stallTimer = setInterval(() => this.watchForStall(), STALL_CHECK_MS);
    this.stallTimer.unref();
  }

  /** Forgives the last `forgivenMs` of every worker's silence (see `silenceFloor` and `forgivingFloor`). */
  private forgiveSilence(forgivenMs: number): void {
    this.silenceFloor = Math.max(this.silenceFloor, forgivingFloor(this.now(), this.options.config.heartbeatTimeoutMs, forgivenMs));
  }

  /** When this process stood still, the heartbeats that waited in its sockets meanwhile were not late. */
  private watchForStall(): void {
    const stoodStillMs = this.stallWatch.check();
    if (stoodStillMs > 0) this.forgiveSilence(stoodStillMs);
  }

  /**
   * Stops taking work, then waits for the running jobs: `queue` is refused with `DRAINING` (gRPC UNAVAILABLE),
   * queued jobs stay QUEUED in the store (a restart on a durable store, or another server sharing it, runs
   * them), and no job is assigned nor worker provisioned any more. Resolves `true` once none of this engine's
   * jobs is ASSIGNED or RUNNING, `false` if `graceMs` passed or `signal` aborted first. Follow with `stop()`,
   * which stops what still runs.
   */
  async drain(options: { graceMs: number; signal?: AbortSignal }): Promise<boolean> {
    if (!this.draining) {
      this.draining = true;
      // After any pass under way (it may still hand out jobs): none follows that assigns one.
      await this.serial.run(() => this.drainPrefetchingWorkers());
    }
    const deadline = this.now() + Math.max(0, options.graceMs);
    for (;;) {
      if (this.stopped) return false;
      const running = await this.store.listJobs({ states: ACTIVE_JOB, limit: Number.MAX_SAFE_INTEGER });
      if (!running.some((job) => job.workerId !== undefined && this.ownWorkers.has(job.workerId))) return true;
      const left = deadline - this.now();
      if (left <= 0 || options.signal?.aborted) return false;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          options.signal?.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, Math.min(100, left));
        options.signal?.addEventListener('abort', done, { once: true });
      });
    }
  }

  /**
   * Asks each connected worker of this engine that was granted a prefetch to drain: it gives back the jobs that
   * wait on it unstarted (`JOB_OUTCOME_RETURNED`, re-queued without counting an attempt, for a restart or
   * another server) and finishes its running ones, instead of starting the waiting ones only to have them
   * stopped, and counted, at `stop()`. Its record goes DRAINING, so that its exit once drained ends it TERMINATED.
   * Workers without a prefetch are left as they are (they hold no job they have not started).
   */
  private async drainPrefetchingWorkers(): Promise<void> {
    for (const [workerId, channel] of this.channels) await this.drainIfPrefetching(workerId, channel);
  }

  private async drainIfPrefetching(workerId: string, channel: WorkerChannel): Promise<void> {
    if (!this.ownWorkers.has(workerId) || !this.prefetchingWorkers.has(workerId)) return;
    await this.markDraining(workerId);
    channel.drain();
  }

  /**
   * Whether another server authenticated `worker` since this engine last did (or this engine never did, while
   * another did): its record holds a session token this engine did not issue, so it reconnected (or registered)
   * there and reports through that server, which answers for it and its jobs now.
   */
  private reconnectedElsewhere(worker: Worker): boolean {
    return worker.sessionTokenHash !== undefined && this.issuedTokens.get(worker.id)?.has(worker.sessionTokenHash) !== true;
  }

  /**
   * Authenticates a worker (see {@link WorkerRegistry.authenticate}) with a session token whose hash this engine
   * counts as issued from before the store has it, so that a cancel (or the stranded sweep) reading the worker's
   * record meanwhile takes it for this engine's. A refusal (`UNAUTHENTICATED`: bad credentials, unknown worker)
   * wrote nothing, and drops it; any other failure may have come after the write landed (a lost reply), and keeps
   * it. Only the last {@link KEPT_TOKEN_HASHES} are kept. A failure is audited (`worker.refused`).
   */
  private async authenticate(workerId: string, credentials: Credentials): Promise<string> {
    const sessionToken = newToken();
    const hash = hashToken(sessionToken);
    const issued = this.issuedTokens.get(workerId) ?? new Set<string>();
    this.issuedTokens.set(workerId, issued.add(hash));
    for (const old of issued) if (issued.size > KEPT_TOKEN_HASHES) issued.delete(old);
    try {
      await this.registry.authenticate(workerId, credentials, sessionToken);
    } catch (error) {
      if (HodeiError.isInstance(error) && error.code === 'UNAUTHENTICATED') {
        issued.delete(hash);
        if (issued.size === 0 && this.issuedTokens.get(workerId) === issued) this.issuedTokens.delete(workerId);
      }
      await this.audit('worker.refused', workerId, { reason: (error as Error).message });
      throw error;
    }
    return sessionToken;
  }

  /**
   * Drops the session-token hashes kept for `workerId` unless it is one of this engine's workers: only those are
   * asked about (see `reconnectedElsewhere`), and only those are forgotten when they end (see `forget`). A worker
   * of another server that registered here, or one that was lost while it reconnected, would keep them for good.
   */
  private keepTokensOnlyForOwn(workerId: string): void {
    if (!this.ownWorkers.has(workerId)) this.issuedTokens.delete(workerId);
  }

  /** Records whether `workerId` was granted a prefetch at its (re)registration. */
  private grantPrefetch(workerId: string, prefetch: number): void {
    if (prefetch > 0) this.prefetchingWorkers.add(workerId);
    else this.prefetchingWorkers.delete(workerId);
  }

  /** Marks a READY or BUSY worker DRAINING (sent nothing more), in its `workerRecords` queue; the worker as updated, if it was. */
  private markDraining(workerId: string): Promise<Worker | undefined> {
    return this.workerRecords.run(workerId, () => this.store.updateWorker(workerId, { states: ['READY', 'BUSY'] }, { state: 'DRAINING' }));
  }

  /** Where the engine logs (the `logger` option); the gRPC services log through it too. */
  get logger(): Logger {
    return this.options.logger;
  }

  /** Whether `drain()` was called: the engine accepts no new job. */
  get isDraining(): boolean {
    return this.draining;
  }

  /**
   * Stops scheduling and this engine's workers. Their running jobs go back to the queue when attempts remain
   * (a server sharing the store, or this one restarted on a durable store, runs them again); the others fail
   * with reason SHUTDOWN. That includes a worker of this engine that reconnected to another server since: this
   * engine's provider ends its process (the worker then reports its running jobs CANCELLED, through that other
   * server), so its jobs are settled here first, and that report finds their lease gone.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.tickTimer);
    clearInterval(this.stallTimer);
    clearTimeout(this.backoffWake?.timer);
    for (const unsubscribe of this.unsubscribes) unsubscribe();
    await this.serial.run(async () => {
      // The workers first: once TERMINATING, no server gives them another job (a claim needs a READY or BUSY worker), so
      // the jobs read next are all they will hold when the provider ends their processes (a worker that reports
      // through another server now would report a job that server gave it in between as CANCELLED).
      for (const workerId of this.ownWorkers) {
        await this.store.updateWorker(workerId, { states: LIVE }, { state: 'TERMINATING' });
      }
      const active = await this.store.listJobs({ states: ACTIVE_JOB, limit: Number.MAX_SAFE_INTEGER });
      const own = active.filter((job) => job.workerId !== undefined && this.ownWorkers.has(job.workerId));
      const mayHaveStarted = await this.ownJobsThatMayHaveStarted(own);
      for (const job of own) {
        await this.settleHeldJob(job, mayHaveStarted.has(job.id), 'SHUTDOWN', {
          ran: 'the server shut down while the job was running',
          unstarted: 'the server shut down while the job waited on its worker',
          cancelled: 'cancelled; the server shut down before its worker reported it',
        });
      }
    });
    for (const channel of this.channels.values()) channel.close();
    this.channels.clear();
    await Promise.allSettled([...this.providers.values()].map((provider) => provider.close()));
    for (const workerId of this.ownWorkers) {
      await this.store.updateWorker(workerId, { states: ['TERMINATING'] }, { state: 'TERMINATED', endedReason: 'server shut down' });
    }
    this.notifier.notifyAll();
  }

  // ---- client operations -------------------------------------------------------------------------

  /**
   * Validates `input` as a {@link JobSpecInput}, stores the job as QUEUED and returns it. Throws `INVALID_ARGUMENT`
   * (with `field`) for a bad spec and `CLOSED` once stopped. `onId`, when given, is called with the job's id just
   * before the job is stored: a caller that waits for the job's changes ({@link notifier}) starts waiting then,
   * so that no change comes unseen and the job returned (not terminal) needs no read.
   */
  async queue(input: unknown, onId?: (jobId: string) => void): Promise<Job> {
    this.checkRunning();
    const spec = validateJobSpec(input);
    const job: Job = { id: newId('job'), spec, state: 'QUEUED', attempt: 1, epoch: 0, createdAt: this.now() };
    onId?.(job.id);
    await this.store.insertJob(job, { ...this.event('job.queued', job.id, { name: spec.name }), occurredAt: job.createdAt });
    this.options.observer?.jobQueued?.(job);
    this.wake();
    return job;
  }

  /** The job with this id; throws `NOT_FOUND` when there is none. */
  async getJob(id: string): Promise<Job> {
    const job = typeof id === 'string' && id !== '' ? await this.store.getJob(id) : undefined;
    if (!job) throw new HodeiError('NOT_FOUND', `no job with id "${id}"`, { field: 'id' });
    return job;
  }

  /** Jobs matching `filter`, newest first. */
  listJobs(filter?: JobFilter): Promise<Job[]> {
    return this.store.listJobs(filter);
  }

  /** Every worker the store knows, in any state. */
  listWorkers(): Promise<Worker[]> {
    return this.store.listWorkers();
  }

  /** Cancels a queued job at once; asks the worker to stop a running one. Idempotent. */
  async cancel(id: string): Promise<Job> {
    await this.getJob(id);
    return this.serial.run(async () => {
      // A job that moves on between the read and the write (given back, re-queued and claimed again by another
      // server) is looked at again: the cancel applies to where it is now, never silently dropped.
      for (let tries = 1; ; tries += 1) {
        const done = await this.cancelOnce(id);
        if (done) return done;
        if (tries >= CANCEL_TRIES) {
          this.options.logger.warn({ jobId: id }, `cancel of job ${id}: it kept moving on; the cancel was not recorded`);
          return this.getJob(id);
        }
      }
    });
  }

  /** One try of `cancel`: the job as cancelled (or as it is, when there is nothing to cancel), or undefined when it moved on meanwhile. */
  private async cancelOnce(id: string): Promise<Job | undefined> {
    const job = await this.getJob(id);
    if (isTerminalJobState(job.state)) return job;
    if (job.state === 'QUEUED') return this.finishWith(job, 'CANCELLED', undefined, 'cancelled before it started');
    const channel = job.workerId ? this.channels.get(job.workerId) : undefined;
    if (!channel && !(await this.mayReconnect(job.workerId))) {
      return this.finishWith(job, 'CANCELLED', undefined, 'cancelled; its worker was gone');
    }
    if (job.cancelRequestedAt !== undefined) {
      // Asked for already: recorded once (its time and event kept); the worker is told again when connected.
      channel?.cancelJob(id, this.options.config.cancelGraceMs);
      return job;
    }
    // Its worker holds the job: recorded, and the worker told now, or when it reconnects (`afterReconnect`);
    // a worker lost meanwhile ends it CANCELLED. The job stays on the worker's record until the worker reports it.
    const updated = await this.store.updateJob(
      id,
      { states: ACTIVE_JOB, epoch: job.epoch },
      { cancelRequestedAt: this.now() },
      this.event('job.cancel_requested', id, {}),
    );
    if (!updated) return undefined;
    if (channel) channel.cancelJob(id, this.options.config.cancelGraceMs);
    else if (job.workerId !== undefined) {
      const awaiting = this.cancelsAwaitingReconnect.get(job.workerId) ?? new Map<string, number>();
      this.cancelsAwaitingReconnect.set(job.workerId, awaiting.set(id, job.epoch));
    }
    return updated;
  }

  /**
   * Whether `workerId` is a worker of this engine whose stream broke and that may come back with its session
   * token (READY, BUSY or DRAINING): it still holds its jobs.
   */
  private async mayReconnect(workerId: string | undefined): Promise<boolean> {
    if (workerId === undefined || !this.ownWorkers.has(workerId)) return false;
    const worker = await this.store.getWorker(workerId);
    if (worker === undefined || !RECONNECTABLE.includes(worker.state)) return false;
    // Unless it reconnected to another server since: that one will not send the cancel (its reconnection is
    // over), and this one no longer hears from it.
    if (!this.reconnectedElsewhere(worker)) return true;
    // The cancels kept for its return here are over too: were it to come back later, the lease kept with such a
    // cancel would keep it from being told of a cancel of a later lease of that job (see `afterReconnect`).
    this.cancelsAwaitingReconnect.delete(workerId);
    return false;
  }

  // ---- worker events -----------------------------------------------------------------------------

  /**
   * Authenticates a worker and marks it READY; a connected worker (READY, BUSY, DRAINING) whose stream broke
   * comes back with its session token and keeps its state and running jobs. Throws `UNAUTHENTICATED` when refused.
   */
  async registerWorker(registration: Registration, channel: WorkerChannel): Promise<RegistrationGrant> {
    const { workerId } = registration;
    const known = await this.store.getWorker(workerId);
    if (known && !registration.otp && registration.sessionToken && RECONNECTABLE.includes(known.state)) {
      return this.reconnectWorker(registration, known, channel);
    }
    if (!known || !['CREATING', 'CONNECTING'].includes(known.state)) {
      await this.audit('worker.refused', workerId, { reason: known ? `state ${known.state}` : 'unknown worker' });
      throw new HodeiError('UNAUTHENTICATED', `worker ${workerId} is not expected to register`);
    }
    const sessionToken = await this.authenticate(workerId, registration);
    const slots = registeredSlots(registration) ?? known.capacity;
    const prefetch = this.prefetchFor(registration);
    await this.serial.run(async () => {
      this.keepTokensOnlyForOwn(workerId);
      const now = this.now();
      const ready = await this.store.updateWorker(workerId, { states: ['CREATING', 'CONNECTING'] }, {
        state: 'READY',
        lastHeartbeat: now,
        idleSince: now,
        capacity: slots + prefetch,
        labels: { ...registration.labels, ...known.labels },
      });
      if (!ready) throw new HodeiError('UNAUTHENTICATED', `worker ${workerId} was stopped before it registered`);
      this.channels.set(workerId, channel);
      this.workerSlots.set(workerId, slots);
      this.grantPrefetch(workerId, prefetch);
      this.provisioningFailures.delete(known.provider);
      await this.audit('worker.registered', workerId, prefetch > 0 ? { slots, prefetch } : {});
    });
    this.wake();
    return { sessionToken, heartbeatIntervalMs: this.options.config.heartbeatIntervalMs, prefetch };
  }

  /** The prefetch a registering worker is granted: the engine's, when the worker holds jobs; else 0. */
  private prefetchFor(registration: Registration): number {
    return registration.holdsPrefetchedJobs === true ? this.options.config.prefetch : 0;
  }

  private async reconnectWorker(registration: Registration, known: Worker, channel: WorkerChannel): Promise<RegistrationGrant> {
    const { workerId } = registration;
    const sessionToken = await this.authenticate(workerId, { sessionToken: registration.sessionToken! });
    // Its slots as it registered them (when known here), plus this engine's grant: another server it reconnects
    // to may grant another prefetch. A worker holding more than the new total is sent nothing until it holds less.
    const slots = this.workerSlots.get(workerId) ?? registeredSlots(registration);
    const prefetch = slots === undefined ? 0 : this.prefetchFor(registration);
    await this.serial.run(async () => {
      // Compare-and-set: a worker marked LOST meanwhile (heartbeat timeout) stays lost; its jobs moved on.
      const back = await this.store.updateWorker(workerId, { states: RECONNECTABLE }, {
        lastHeartbeat: this.now(),
        ...(slots === undefined ? {} : { capacity: slots + prefetch }),
      });
      if (!back) {
        // Lost meanwhile: this engine forgot it then, and the hash issued since would stay.
        this.keepTokensOnlyForOwn(workerId);
        throw new HodeiError('UNAUTHENTICATED', `worker ${workerId} was lost before it reconnected`);
      }
      const previous = this.channels.get(workerId);
      this.channels.set(workerId, channel);
      if (previous && previous !== channel) previous.close();
      this.ownWorkers.add(workerId);
      if (slots !== undefined) this.workerSlots.set(workerId, slots);
      this.grantPrefetch(workerId, prefetch);
      await this.audit('worker.reconnected', workerId, { state: known.state, ...(prefetch > 0 ? { slots, prefetch } : {}) });
    });
    // After the Registered that the caller sends: a cancel requested while the worker was away (see `cancel`),
    // and a drain that began meanwhile.
    setImmediate(() => void this.afterReconnect(workerId, channel, registration.ignoresRepeatedRuns === true).catch(this.logFailure('worker reconnection')));
    this.wake();
    return { sessionToken, heartbeatIntervalMs: this.options.config.heartbeatIntervalMs, prefetch };
  }

  /**
   * Tells a worker that reconnected on `channel` what it missed: the `RunJob` of each job assigned to it that has
   * not started (one written just before its stream broke may never have arrived; only to a worker that
   * `ignoresRepeatedRuns`, which drops those it has; such a job cancelled meanwhile is not sent, but awaits the
   * worker's report or heartbeats: see `endCancelledNotHeld`),
   * `CancelJob` for each job it holds whose cancel was requested while its stream was down, and `Drain` when this
   * engine drains and granted it a prefetch.
   */
  private async afterReconnect(workerId: string, channel: WorkerChannel, resendsAssigned: boolean): Promise<void> {
    if (this.channels.get(workerId) !== channel) return;
    // In the serial section, as `cancel` is: a cancel cannot land between a job's read here and its RunJob.
    await this.serial.run(async () => {
      const worker = await this.store.getWorker(workerId);
      // The epochs of the cancels recorded here: a request is for the lease it was made against (one recorded by
      // another server, not known here, is taken as the store has it).
      const epochs = this.cancelsAwaitingReconnect.get(workerId);
      this.cancelsAwaitingReconnect.delete(workerId);
      const jobIds = worker?.runningJobIds ?? [];
      const jobs = await Promise.all(jobIds.map((jobId) => this.store.getJob(jobId)));
      for (const [index, job] of jobs.entries()) {
        const jobId = jobIds[index]!;
        if (job === undefined || job.workerId !== workerId || isTerminalJobState(job.state)) continue;
        const requestedAt = epochs?.get(jobId);
        const cancelled = job.cancelRequestedAt !== undefined && (requestedAt === undefined || requestedAt === job.epoch);
        if (resendsAssigned && job.state === 'ASSIGNED' && this.channels.get(workerId) === channel) {
          if (!cancelled) {
            await this.sendJob(job, channel);
            continue;
          }
          // A cancelled one is not sent again (the worker could start the command before it reads the CancelJob).
          // The worker may hold it, even run it (its start report still on its way): it is told to stop, and the
          // job ends from its report, or when its heartbeats show it does not hold the job (the RunJob was lost).
          const awaiting = this.cancelsAwaitingHeartbeat.get(workerId) ?? new Map<string, { epoch: number; unlisted: number }>();
          this.cancelsAwaitingHeartbeat.set(workerId, awaiting.set(jobId, { epoch: job.epoch, unlisted: 0 }));
        }
        if (cancelled) channel.cancelJob(jobId, this.options.config.cancelGraceMs);
      }
    });
    if (this.draining && this.channels.get(workerId) === channel) await this.serial.run(() => this.drainIfPrefetching(workerId, channel));
  }

  /**
   * Records that a connected worker is alive. `runningJobIds`: the jobs it says it runs. One that ended, or whose
   * lease moved to another worker, while it could not be told (another server cancelled it, having no stream to
   * the worker; the job prints nothing, so no report of it was refused), and one with a cancel request (which a
   * race with a reconnection may have kept from it), is stopped now: `CancelJob` (the worker ignores a repeat).
   */
  async heartbeat(workerId: string, runningJobIds: readonly string[] = []): Promise<void> {
    this.heartbeatsHeard.set(workerId, this.now());
    await this.store.updateWorker(workerId, { states: ['READY', 'BUSY', 'DRAINING'] }, { lastHeartbeat: this.now() });
    await this.endCancelledNotHeld(workerId, runningJobIds);
    // Nothing can be sent to a worker without a stream here: its jobs are not read.
    const channel = this.channels.get(workerId);
    if (channel === undefined || runningJobIds.length === 0) return;
    const jobs = await Promise.all(runningJobIds.map((jobId) => this.store.getJob(jobId)));
    jobs.forEach((job, index) => {
      if (job !== undefined && !isTerminalJobState(job.state) && job.workerId === workerId && job.cancelRequestedAt === undefined) return;
      // Not one back in the queue: its next run may be sent to this very worker before the CancelJob (which names
      // the job, not the run) would arrive, and stop it. The stale run learns it when its next report is refused.
      if (job?.state === 'QUEUED') return;
      channel.cancelJob(runningJobIds[index]!, this.options.config.cancelGraceMs);
    });
  }

  /**
   * Ends CANCELLED ("cancelled before it started") each job cancelled while `workerId` was away that two of its
   * heartbeats since did not list (see `cancelsAwaitingHeartbeat`): it never got the job, or already dropped it.
   * One is not enough: a job that ended while the worker was away is listed by none, and its result, resent
   * before the heartbeat, may be handled after it (reports and heartbeats are handled apart). A job it lists ends
   * from its own report once the CancelJob stopped it, with its start and output kept.
   */
  private async endCancelledNotHeld(workerId: string, runningJobIds: readonly string[]): Promise<void> {
    const awaiting = this.cancelsAwaitingHeartbeat.get(workerId);
    if (awaiting === undefined) return;
    for (const [jobId, wait] of awaiting) {
      if (!runningJobIds.includes(jobId) && ++wait.unlisted < UNLISTED_HEARTBEATS_BEFORE_UNSTARTED) continue;
      awaiting.delete(jobId);
      if (runningJobIds.includes(jobId)) continue;
      const job = await this.store.getJob(jobId);
      if (job?.state !== 'ASSIGNED' || job.epoch !== wait.epoch || job.workerId !== workerId || job.cancelRequestedAt === undefined) continue;
      await this.finishWith(job, 'CANCELLED', undefined, 'cancelled before it started');
    }
    if (awaiting.size === 0 && this.cancelsAwaitingHeartbeat.get(workerId) === awaiting) this.cancelsAwaitingHeartbeat.delete(workerId);
  }

  /**
   * Marks an ASSIGNED job RUNNING when the report matches its current lease (worker and epoch); a stale report
   * is refused. `startedAgoMs`: how long before now the process started (the report may come a few ms after
   * the start), the start being held to `notBefore` (the job's assignment time) when given, else to now.
   * Resolves with the job as running under that lease (as the start wrote it, or as a resent report finds it),
   * or undefined when the report was stale.
   */
  async jobStarted(workerId: string, jobId: string, epoch: number, startedAgoMs = 0, notBefore?: number): Promise<Job | undefined> {
    const now = this.now();
    const startedAt = startTime(now, startedAgoMs, notBefore ?? now);
    const job =
      (await this.store.updateJob(
        jobId,
        { states: ['ASSIGNED'], epoch },
        { state: 'RUNNING', startedAt },
        { ...this.event('job.started', jobId, { workerId, epoch }), occurredAt: startedAt },
      )) ?? (await this.landedInDoubt(jobId, { state: 'RUNNING', workerId, epoch, startedAt }, 'startedAt'));
    if (!job || job.workerId !== workerId) {
      const current = await this.store.getJob(jobId);
      if (current?.state === 'RUNNING' && current.epoch === epoch && current.workerId === workerId) return current; // a resend
      await this.fenced(workerId, jobId, epoch, 'start');
      return undefined;
    }
    this.options.observer?.jobStarted?.(job, (job.startedAt ?? job.createdAt) - job.createdAt);
    this.notifier.notify(jobId, 'state');
    return job;
  }

  /**
   * Stores a run's batch of log lines whose first line has seq `firstSeq` (the worker numbers a run's lines
   * from the `firstLogSeq` it was sent), unless it comes from a stale lease. Idempotent: lines the store already
   * has (by the store's last seq for the job, so it holds across servers and restarts) are skipped. Resolves
   * with the seq the worker may forget lines up to (for a stale lease, the whole batch), or undefined when an
   * earlier batch is missing (it failed to store): nothing is stored and the worker resends from that one.
   * Rejects when the store fails; nothing is acknowledged then either. Without `firstSeq` the lines are
   * appended after whatever is stored (no resend filter).
   */
  async appendLogs(workerId: string, jobId: string, epoch: number, batch: readonly NewLogLine[], firstSeq?: number): Promise<number | undefined> {
    return (await this.storeRunLines(workerId, jobId, epoch, packLogLineBatch(batch), firstSeq)).acked;
  }

  /**
   * {@link appendLogs} for a packed batch numbered from its `firstSeq`: stored as a batch when the store has
   * `appendLogBatch` (no object per line), else line by line.
   */
  async appendLogBatch(workerId: string, jobId: string, epoch: number, batch: LogLineBatch): Promise<number | undefined> {
    return (await this.storeRunLines(workerId, jobId, epoch, batch, batch.firstSeq)).acked;
  }

  /**
   * Stores a packed batch as {@link appendLogs} describes; resolves with what `appendLogs` resolves with
   * (`acked`), and with what it read: the job (read before the append, which changes only its lines) and its
   * stored line count after the append, so that a result that comes with its run's last lines needs no second
   * read.
   */
  private storeRunLines(
    workerId: string,
    jobId: string,
    epoch: number,
    batch: NewLogLineBatch,
    firstSeq?: number,
  ): Promise<{ acked: number | undefined; job: Job | undefined; logCount: number }> {
    const count = logLineBatchCount(batch);
    return this.logAppends.run(jobId, async () => {
      // The lease is checked here, after any wait in this queue or on store retries, right before the append:
      // a batch of a run whose job was re-queued meanwhile must not land among (or before) the next attempt's
      // lines, whose first seq the next assignment reads from the store.
      const { job, logCount: stored } = await this.jobAndLogCount(jobId);
      if (!job || job.epoch !== epoch || job.workerId !== workerId || isTerminalJobState(job.state)) {
        await this.fenced(workerId, jobId, epoch, 'logs');
        return { acked: (firstSeq ?? 1) + count - 1, job, logCount: stored };
      }
      const first = firstSeq ?? stored + 1;
      const last = first + count - 1;
      if (last <= stored) return { acked: stored, job, logCount: stored };
      if (first > stored + 1) return { acked: undefined, job, logCount: stored };
      const lines = sliceLogLineBatch({ ...batch, firstSeq: first }, stored - first + 1, count);
      // Not through the retrying store: an append whose connection broke after it committed would be stored
      // twice by a retry. Failing here means no ack; the worker resends and the lines stored are skipped.
      const store = this.options.store;
      const append = store.appendLogBatch
        ? store.appendLogBatch(jobId, lines)
        : store.appendLogs(jobId, unpackLogLineBatch(lines));
      // A failure propagates: the worker service logs it (with the worker) and sends no ack.
      const appended = await append;
      this.options.observer?.logLines?.(logLineBatchCount(lines), lines.text.length);
      this.notifier.notify(jobId, 'logs');
      return { acked: appended, job, logCount: appended };
    });
  }

  /**
   * Records a run's result when the report matches its current lease, re-queueing it when its exit code is
   * listed in `retryOnExitCodes` and attempts remain. With `lastLogSeq` (the seq of the run's last line), a
   * result whose lines are not all stored yet is not recorded (resolves false): the worker resends the missing
   * batches, then the result. Resolves true once the result was recorded or refused as stale (either way the
   * worker may forget it). With `started`, the report also says the run started (a short job's start travels
   * with its result): an ASSIGNED job's start and end are then recorded in one write, with both audit events.
   * With `lines`, the run's last lines (numbered from their `firstSeq`) travel with the result: they are stored
   * first, as {@link appendLogBatch} stores them, and the job read for their append serves the result too; when
   * they cannot be stored yet (an earlier batch is missing) the result is not recorded either (resolves false).
   */
  async jobFinished(
    workerId: string,
    jobId: string,
    epoch: number,
    report: FinishedReport,
    lastLogSeq = 0,
    started = false,
    lines?: LogLineBatch,
  ): Promise<boolean> {
    // The worker freed the job's slot when the job ended: the scheduler counts it free from now on, while the
    // result is recorded, and a worker holding jobs beyond its slots is refilled now when that frees room enough.
    let reported: Set<string> | undefined;
    const markReported = () => {
      reported = this.reportedResults.get(workerId) ?? new Set<string>();
      this.reportedResults.set(workerId, reported.add(jobId));
      const seen = this.lastWorkerRecord.get(workerId);
      if (this.prefetchingWorkers.has(workerId) && (!seen || (workerRoom(seen, this.workerSlots).room === 0 && this.roomOf(seen) > 0))) this.wake();
    };
    let outcome: { recorded: boolean; freed?: Worker };
    try {
      outcome = await this.recordResult(workerId, jobId, epoch, report, lastLogSeq, started, lines, markReported);
    } finally {
      if (reported) {
        reported.delete(jobId);
        if (reported.size === 0 && this.reportedResults.get(workerId) === reported) this.reportedResults.delete(workerId);
      }
    }
    const { recorded, freed } = outcome;
    // A pass follows, unless the only change is a place freed on a worker that is sent no more jobs until more
    // of them free (it holds jobs beyond its slots: see `workerRoom`); the periodic pass still runs.
    const quiet = freed !== undefined && (freed.state === 'READY' || freed.state === 'BUSY') && this.roomOf(freed) === 0;
    if (recorded && !quiet) this.wake();
    return recorded;
  }

  /**
   * A worker gave back a job it had not started (it waited for a slot on a worker that now drains, or came
   * while it drains, or beyond the jobs it holds): the worker takes no more jobs (DRAINING, and asked to drain,
   * when it was not draining yet), and when the report matches the job's current lease the job goes back to the
   * queue with its attempt unchanged and its place on the worker is freed.
   * Resolves true once handled (a stale report is ignored): the worker may forget the report.
   */
  async jobReturned(workerId: string, jobId: string, epoch: number): Promise<boolean> {
    const draining = await this.markDraining(workerId);
    // A worker that was not draining gave back a job it had no room for (its record here counted fewer jobs than
    // it holds: a job cancelled through another server, which it still holds): it drains, gives back what
    // waits on it and exits once its running jobs end (TERMINATED), so that a fresh worker with a true record
    // takes its place. A current worker starts draining itself when it gives such a job back (a `Drain` lost
    // with a broken stream would leave it DRAINING here but taking jobs there); this `Drain` is for a worker
    // of an earlier release. For a worker that drains already, `Drain` changes nothing.
    if (draining && this.prefetchingWorkers.has(workerId)) this.channels.get(workerId)?.drain();
    const job = await this.store.getJob(jobId);
    if (job?.state === 'ASSIGNED' && job.workerId === workerId && job.epoch === epoch) {
      if (await this.putBackUnstarted(job, `worker ${workerId} gave it back before starting it (the worker drains)`)) {
        await this.releaseSlot(workerId, jobId);
      }
    }
    this.wake();
    return true;
  }

  /**
   * What a result is checked against: the job and its stored line count (0 when `lastLogSeq` is 0 and no lines
   * come along, which need no count). Lines that come with the result are stored first (a stale lease's are
   * refused, as `appendLogBatch` refuses them, and the result is then refused too); undefined when they cannot
   * be stored yet (an earlier batch is missing).
   */
  private async jobForResult(
    workerId: string,
    jobId: string,
    epoch: number,
    lastLogSeq: number,
    lines: LogLineBatch | undefined,
  ): Promise<{ job: Job | undefined; logCount: number } | undefined> {
    if (lines && logLineBatchCount(lines) > 0) {
      const stored = await this.storeRunLines(workerId, jobId, epoch, lines, lines.firstSeq);
      return stored.acked === undefined ? undefined : stored;
    }
    if (lastLogSeq > 0) return this.jobAndLogCount(jobId);
    return { job: await this.store.getJob(jobId), logCount: 0 };
  }

  /**
   * `jobFinished` without the wake-up. Not in the serial section: every job write is compare-and-set, and the
   * worker's record is updated under its own key (`workerRecords`), so a result does not wait for a scheduling
   * pass (on PostgreSQL, one pass and one result at a time held a deep queue to ~70 jobs/s).
   */
  private async recordResult(
    workerId: string,
    jobId: string,
    epoch: number,
    report: FinishedReport,
    lastLogSeq: number,
    started: boolean,
    lines: LogLineBatch | undefined,
    onLeased: () => void = () => undefined,
  ): Promise<{ recorded: boolean; freed?: Worker }> {
    // With lines to check, the job and its stored line count in one read (when the store can); with lines to
    // store, the read their append made.
    const read = await this.jobForResult(workerId, jobId, epoch, lastLogSeq, lines);
    if (!read) return { recorded: false };
    const { job: current, logCount } = read;
    // The report's lease is the job's current one (past the check below, the job has not ended under it).
    const leased = current !== undefined && current.workerId === workerId && current.epoch === epoch;
    if (leased && isTerminalJobState(current.state)) {
      // Ended under this very lease: a resend of a result recorded already (its ack was lost, or the release that
      // followed it failed and nothing was acknowledged). Its place is freed again: a terminal job never returns to a
      // worker's list, so this is a no-op unless that release failed.
      await this.releaseSlot(workerId, jobId);
      return { recorded: true };
    }
    let patch = finalJobPatch(report, this.now());
    // An earlier attempt's error (why it was retried) is not this attempt's: a job that succeeds on a retry carries none.
    if (leased && patch.errorMessage === undefined && current.errorMessage !== undefined) patch = { ...patch, errorMessage: undefined };
    if (leased && lastLogSeq > 0 && logCount < lastLogSeq) return { recorded: false };
    if (leased) onLeased();
    const startsNow = started && leased && current.state === 'ASSIGNED';
    const retryable =
      leased &&
      patch.failureReason === 'EXIT_CODE' &&
      patch.exitCode !== undefined &&
      current.spec.retryOnExitCodes?.includes(patch.exitCode) === true &&
      current.attempt < current.spec.maxAttempts;
    // A cancel was requested and the command failed (the cancel may have caused it): the job ends CANCELLED with
    // what the run reported, on any attempt and whether or not the exit code is retried; it is never retried.
    // A command that succeeded ends SUCCEEDED: its work was done before the cancel could stop it.
    // A start that travels with the result: the run's end less its duration, never before the job's assignment.
    const startedAgoMs = Math.round(report.startedAgoMs ?? report.durationMs);
    const startBound = startsNow ? (current.assignedAt ?? current.createdAt) : 0;
    if (leased && patch.failureReason === 'EXIT_CODE' && current.cancelRequestedAt !== undefined) patch = cancelledInsteadOfFailed(patch);
    else if (retryable) {
      // The attempt as it ran (with its start, just recorded, dated as below: the end less the run's duration):
      // what a cancel landing during the re-queue keeps.
      const ran = (startsNow ? await this.jobStarted(workerId, jobId, epoch, startedAgoMs, startBound) : undefined) ?? current;
      const message = `command exited with code ${patch.exitCode}; retrying (attempt ${current.attempt + 1} of ${current.spec.maxAttempts})`;
      // Re-queue and free the slot as one step for the worker's record: a pass must not claim the job again
      // for this worker in between (its list would hold it twice, and the release then drop both).
      const requeued = await this.workerRecords.run(workerId, async () => {
        const ended = { durationMs: patch.durationMs, signal: patch.signal };
        if (!(await this.requeue(ran, message, { exitCode: patch.exitCode }, cancelledAfterExit(patch), ended))) return false;
        await this.releaseSlotNow(workerId, [jobId]);
        return true;
      });
      if (requeued) return { recorded: true };
    }
    // The run's start: its end less the duration the worker measured.
    const startedAt = startsNow ? startTime(patch.completedAt, startedAgoMs, startBound) : 0;
    const job =
      (await this.writeResult(
        jobId,
        { states: startsNow ? ['ASSIGNED'] : ACTIVE_JOB, epoch },
        startsNow ? { ...patch, startedAt } : patch,
        [
          ...(startsNow ? [{ ...this.event('job.started', jobId, { workerId, epoch }), occurredAt: startedAt }] : []),
          { ...this.event('job.finished', jobId, { state: patch.state, exitCode: patch.exitCode ?? null }), occurredAt: patch.completedAt },
        ],
        leased ? current : undefined,
      )) ??
      (await this.landedInDoubt(jobId, { state: patch.state, workerId, epoch, completedAt: patch.completedAt }, 'completedAt'));
    if (!job || job.workerId !== workerId) {
      await this.fenced(workerId, jobId, epoch, 'result');
      return { recorded: true };
    }
    if (startsNow) this.options.observer?.jobStarted?.(job, (job.startedAt ?? job.createdAt) - job.createdAt);
    this.options.observer?.jobFinished?.(job);
    // Before the slot is freed: in the same turn as the store's own announcement of the change (`onJobChanged`),
    // so that the waiters it wakes get the job as recorded and need not read it.
    this.notifier.notify(jobId, changeOf(job.state), job);
    const freed = await this.releaseSlot(workerId, jobId);
    return { recorded: true, ...(freed ? { freed } : {}) };
  }

  /**
   * Writes a result's `patch` under `guard`. With the job as just read (`current`) and a store that has
   * `compareAndSetJob`, the store does not send the job back: the compare-and-set also requires the state read,
   * so the job written is `current` with the patch (a cancel request recorded in between is in the store, not in
   * the job returned); if the state moved on meanwhile (the start recorded), `updateJob` writes it and reads it.
   */
  private async writeResult(
    jobId: string,
    guard: JobGuard,
    patch: Partial<Job>,
    events: readonly AuditEvent[],
    current: Job | undefined,
  ): Promise<Job | undefined> {
    if (current && this.store.compareAndSetJob && guard.states?.includes(current.state)) {
      if (await this.store.compareAndSetJob(jobId, { states: [current.state], epoch: guard.epoch }, patch, events)) return withJobPatch(current, patch);
    }
    return this.store.updateJob(jobId, guard, patch, events);
  }

  /**
   * The worker's stream ended. The worker keeps its state and jobs and may reconnect with its session token;
   * until it does it is offered no job, and if it stays silent past the heartbeat timeout the scheduler marks
   * it LOST (a worker process that exits is marked LOST at once through the provider's exit event).
   */
  async workerDisconnected(workerId: string, channel: WorkerChannel): Promise<void> {
    if (this.channels.get(workerId) !== channel) return;
    this.channels.delete(workerId);
    await this.audit('worker.disconnected', workerId, {});
    this.wake();
  }

  private async workerExited(workerId: string, reason: string): Promise<void> {
    await this.serial.run(async () => {
      const worker = await this.store.getWorker(workerId);
      // Ended already (another server terminated it, or marked it LOST): nothing to settle, only to forget.
      if (!worker || !LIVE_WORKER_STATES.has(worker.state)) return this.forget(workerId);
      const provider = this.providers.get(worker.provider);
      if (worker.state === 'TERMINATING' || (worker.state === 'DRAINING' && worker.runningJobIds.length === 0)) {
        // A drained worker (it gave back its waiting jobs, its running ones ended) that exits is done, not lost.
        await this.store.updateWorker(workerId, { states: [worker.state] }, { state: 'TERMINATED', endedReason: reason });
        this.forget(workerId);
        await this.audit('worker.terminated', workerId, { reason });
        if (worker.state === 'DRAINING') {
          provider?.destroyWorker(workerId).catch((error: unknown) => {
            this.options.logger.warn({ err: error, workerId }, 'could not clean up a drained worker');
          });
        }
      } else if ((worker.state === 'CREATING' || worker.state === 'CONNECTING') && provider) {
        // A worker that dies before registering is a failed start, not a lost worker: retried with backoff,
        // then the jobs waiting for it fail instead of waiting for workers that can never start.
        await this.provisioningFailed(provider, workerId, `worker ${workerId} exited before registering: ${reason}`);
      } else {
        await this.markLost(workerId, reason);
      }
    });
    this.wake();
  }

  // ---- scheduling --------------------------------------------------------------------------------

  /** A scheduling pass started in this turn of the event loop (see `wake`); cleared at its check phase. */
  private passStartedThisTurn = false;

  /** Asks for a scheduling pass soon; passes never overlap and requests made during one coalesce. */
  wake(): void {
    if (this.stopped) return;
    this.reconcileRequested = true;
    if (this.reconciling) return;
    this.reconciling = true;
    // The first pass of a turn of the event loop starts in that turn, once the callback that asked has run
    // (requests made meanwhile coalesce into it): gRPC sends what is written in a turn at its check phase, and a
    // pass started with setImmediate ran in the check phase, so the jobs it sent waited a whole turn, behind
    // whatever I/O the next poll handled (another client's call, a worker's report), before they left. A later
    // pass asked for in the same turn (by another callback of its I/O: on the memory store the first pass is over
    // by then) waits for the check phase, so a burst of calls in one turn shares one pass, not one each.
    if (this.passStartedThisTurn) {
      setImmediate(() => void this.reconcileLoop());
      return;
    }
    this.passStartedThisTurn = true;
    setImmediate(() => (this.passStartedThisTurn = false));
    process.nextTick(() => void this.reconcileLoop());
  }

  private async reconcileLoop(): Promise<void> {
    try {
      while (this.reconcileRequested && !this.stopped) {
        this.reconcileRequested = false;
        await this.serial.run(() => this.reconcileOnce());
      }
    } catch (error) {
      this.options.logger.error({ err: error }, 'scheduling pass failed');
    } finally {
      this.reconciling = false;
    }
  }

  private async reconcileOnce(): Promise<void> {
    const { config } = this.options;
    // A pass right after this process stood still runs before the stall timer: look here too.
    this.watchForStall();
    if (this.now() >= this.nextStrandedSweepAt) {
      this.nextStrandedSweepAt = this.now() + STRANDED_SWEEP_MS;
      await this.requeueStranded();
    }
    // The queue's head read with the workers, as far as the last pass read it first (its demand is not known
    // before the workers are): one read where the store can.
    const fusedLimit = Math.min(this.lastFirstRead, FUSED_QUEUE_READ_MAX);
    const head = this.store.listWorkersAndQueue && !this.draining ? await this.store.listWorkersAndQueue(LIVE, fusedLimit) : undefined;
    const liveWorkers = head?.workers ?? (await this.store.listWorkers({ states: LIVE }));
    const workers = this.schedulable(liveWorkers.map((worker) => this.schedulingView(worker)));
    const providers = [...this.providers.values()]
      .filter((provider) => (this.provisioningFailures.get(provider.name)?.retryAt ?? 0) <= this.now())
      .map((provider) => ({ name: provider.name, ...provider.capabilities }));
    const now = this.now();
    const snapshot = {
      now,
      workers,
      providers,
      heartbeatTimeoutMs: config.heartbeatTimeoutMs,
      idleTimeoutMs: config.idleTimeoutMs,
      provisioningTimeoutMs: config.provisioningTimeoutMs,
      workerSlots: this.workerSlots,
    };
    // Draining: queued jobs wait in the store for a restart or another server.
    const { queuedJobs, decisions } = this.draining
      ? { queuedJobs: [], decisions: decide({ ...snapshot, queuedJobs: [] }) }
      : await this.planQueueHead(snapshot, head && { limit: fusedLimit, jobs: head.queuedJobs });
    // A job re-queued by any engine sharing the store (or before a restart) may be backing off: wake up when it may run.
    const backoffEnd = nextBackoffEnd(queuedJobs, now);
    if (backoffEnd !== undefined) this.wakeAt(backoffEnd);
    await this.applyAll(decisions, workers);
    // The pass saw only the head of a deep queue, where no job may suit a worker that is free: let such workers
    // claim from the whole queue (the store picks jobs their labels allow).
    if (queuedJobs.length >= QUEUE_WINDOW && this.store.claimJobs) await this.claimBeyondWindow(workers, providers, decisions, now);
  }

  /**
   * Reads the head of the queue as far as this pass can act on it, and decides. The first read covers every
   * slot the workers and providers could fill (`queueDemandBound`, at least {@link QUEUE_FIRST_READ}); while
   * slots are still free after the jobs read (labels kept jobs off them) and the queue goes on, each read goes
   * {@link QUEUE_READ_GROWTH} times as far as the one before, up to the whole {@link QUEUE_WINDOW} (a provider
   * with room that no queued job asks for keeps a slot free however far the pass reads: four reads at most, not
   * one per step). With every worker busy, a pass over a deep queue reads a few jobs instead of all of them;
   * with one slot free, as after a job ended, it reads {@link QUEUE_FIRST_READ}. The rest of the queue could
   * only wait: no decision changes, except the wake-up for a backing-off job further back, which could not run
   * before a slot frees and starts a pass. `head`: the jobs a read of up to `limit` returned (read with the
   * workers), which serve instead of a read that would go no further.
   */
  private async planQueueHead(
    snapshot: Omit<SchedulerSnapshot, 'queuedJobs'>,
    head?: { limit: number; jobs: Job[] },
  ): Promise<{ queuedJobs: Job[]; decisions: Decision[] }> {
    const first = Math.min(QUEUE_WINDOW, Math.max(QUEUE_FIRST_READ, queueDemandBound(snapshot)));
    this.lastFirstRead = first;
    for (let limit = Math.max(first, head?.limit ?? 0); ; limit = Math.min(QUEUE_WINDOW, limit * QUEUE_READ_GROWTH)) {
      // The head read already will do when it went as far, or reached the end of the queue.
      const queuedJobs = head && (head.limit >= limit || head.jobs.length < head.limit) ? head.jobs : await this.store.queuedJobs(limit);
      head = undefined;
      const { decisions, spareCapacity } = plan({ ...snapshot, queuedJobs });
      if (queuedJobs.length < limit || !spareCapacity || limit >= QUEUE_WINDOW) return { queuedJobs, decisions };
    }
  }

  /**
   * Claims, for each of this engine's available workers, the room the pass's decisions left (see `workerRoom`):
   * its free slots, and its free prefetch room only while no worker is being started and no provider may start
   * one (the scheduler's rule: a job is held on a worker only when no other worker could take it).
   */
  private async claimBeyondWindow(
    workers: readonly Worker[],
    providers: readonly { name: string; maxWorkers: number }[],
    decisions: readonly Decision[],
    now: number,
  ): Promise<void> {
    const starting = mayStartWorker(workers, providers);
    const decided = new Map<string, number>();
    for (const decision of decisions) {
      if (decision.type === 'assign') decided.set(decision.workerId, (decided.get(decision.workerId) ?? 0) + 1);
      if (decision.type === 'terminate') decided.set(decision.workerId, Number.POSITIVE_INFINITY);
    }
    await allSettledOrThrow(
      workers
        .filter((worker) => this.ownWorkers.has(worker.id) && isAvailable(worker, now, this.options.config.heartbeatTimeoutMs))
        .map((worker) => {
          const { free, room } = workerRoom(worker, this.workerSlots);
          return { worker, free: (starting ? free : room) - (decided.get(worker.id) ?? 0) };
        })
        .filter(({ free }) => free > 0)
        .map(({ worker, free }) => this.claim(worker.id, free, worker)),
    );
  }

  /**
   * Applies a pass's decisions: the others in order, then the assignments, gathered per worker (one claim
   * per worker for all its jobs of the pass), the workers' claims concurrently so that their store writes
   * share batched statements. A worker's assignments stay one after another (each changes its list of running
   * jobs). Each job is assigned once per pass, and its compare-and-set guards it anyway.
   */
  private async applyAll(decisions: readonly Decision[], workers: readonly Worker[]): Promise<void> {
    const jobsByWorker = new Map<string, string[]>();
    const seen = new Map(workers.map((worker) => [worker.id, worker]));
    for (const decision of decisions) {
      if (decision.type !== 'assign') {
        await this.apply(decision);
        continue;
      }
      const jobIds = jobsByWorker.get(decision.workerId) ?? [];
      jobIds.push(decision.jobId);
      jobsByWorker.set(decision.workerId, jobIds);
    }
    const claims = await allSettledOrThrow(
      [...jobsByWorker].map(async ([workerId, jobIds]) => {
        if (this.store.claimJobs) return (await this.claim(workerId, jobIds.length, seen.get(workerId))) === jobIds.length;
        for (const jobId of jobIds) await this.assign(jobId, workerId);
        return true;
      }),
    );
    // A claim that got fewer jobs than the pass counted on lost them to another engine's claim (or to one of
    // this pass's claims for a worker with other labels): look at the queue again shortly.
    if (claims.includes(false)) setTimeout(() => this.wake(), CLAIM_SHORTFALL_RETRY_MS).unref();
  }


  /**
   * Puts back in the queue the ASSIGNED jobs whose assignment can no longer be delivered (see
   * `strandedAssignments`): claimed for one of this engine's workers but never recorded on it nor sent (the
   * store failed between the two writes), or assigned to a worker that is gone. They never started, so the
   * attempt is not counted. Runs inside a pass, when none of this engine's assignments is under way.
   */
  private async requeueStranded(): Promise<void> {
    const assigned = await this.store.listJobs({ states: ['ASSIGNED'], limit: Number.MAX_SAFE_INTEGER });
    if (assigned.length === 0) return;
    // Workers read after the jobs: a worker another server started and gave a job after a workers list was
    // read must not pass for unknown.
    const liveWorkers = await this.store.listWorkers({ states: LIVE });
    // Not a worker of this engine's that reconnected to another server: that server's claims for it, between
    // their two writes (the job ASSIGNED, not yet on the worker's list), are not stranded.
    const here = new Set<string>();
    for (const worker of liveWorkers) if (this.ownWorkers.has(worker.id) && !this.reconnectedElsewhere(worker)) here.add(worker.id);
    for (const job of strandedAssignments(assigned, liveWorkers, here)) {
      const reason = `its assignment to worker ${job.workerId} was never delivered`;
      if (!(await this.putBackUnstarted(job, reason))) continue;
      this.options.logger.warn({ jobId: job.id, workerId: job.workerId }, `job ${job.id} re-queued: ${reason}`);
      this.reconcileRequested = true;
    }
  }

  /**
   * Puts an ASSIGNED job that never started back in the queue, its attempt not counted and without a retry
   * backoff (it did not fail): a stranded assignment, or a job that waited on a worker (prefetch) that is gone.
   */
  private async requeueUnstarted(job: Job, reason: string): Promise<Job | undefined> {
    const requeued = await this.store.updateJob(
      job.id,
      { states: ['ASSIGNED'], epoch: job.epoch, cancelRequested: false },
      { state: 'QUEUED', workerId: undefined, assignedAt: undefined, errorMessage: reason },
      this.event('job.requeued', job.id, { attempt: job.attempt, reason }),
    );
    if (!requeued) return undefined;
    this.notifier.notify(job.id);
    return requeued;
  }

  /**
   * {@link requeueUnstarted}, unless a cancel was requested: then the job ends CANCELLED, unstarted (also when
   * the request landed between the read of `job` and its re-queueing: the re-queue is guarded on
   * `cancelRequested: false`, so the job is never QUEUED with it). Must not run in the worker's
   * `workerRecords` queue (ending it frees its place on the worker). Resolves true once the job left its worker.
   */
  private async putBackUnstarted(job: Job, reason: string): Promise<boolean> {
    if (job.cancelRequestedAt !== undefined) return (await this.finishWith(job, 'CANCELLED', undefined, 'cancelled before it started')) !== undefined;
    const requeued = await this.requeueUnstarted(job, reason);
    if (!requeued) {
      const asked = await this.cancelAskedOf(job);
      return asked !== undefined && (await this.finishWith(asked, 'CANCELLED', undefined, 'cancelled before it started')) !== undefined;
    }
    // A store that does not know the `cancelRequested` guard re-queues a job a cancel reached meanwhile: it ends now.
    if (requeued.cancelRequestedAt !== undefined) await this.finishWith(requeued, 'CANCELLED', undefined, 'cancelled before it started');
    return true;
  }

  /**
   * {@link heldJobsThatMayHaveStarted} for the active jobs of several workers: each worker's jobs in the order its
   * record lists them (the order they were sent), with its slots when this engine registered it. A job its worker
   * does not list (a stranded assignment) counts, as it always did.
   */
  private async ownJobsThatMayHaveStarted(active: readonly Job[]): Promise<Set<string>> {
    const started = new Set<string>();
    const byWorker = new Map<string, Map<string, Job>>();
    for (const job of active) {
      if (job.workerId === undefined) continue;
      const byId = byWorker.get(job.workerId) ?? new Map<string, Job>();
      byWorker.set(job.workerId, byId.set(job.id, job));
    }
    for (const [workerId, byId] of byWorker) {
      const listed = ((await this.store.getWorker(workerId))?.runningJobIds ?? []).flatMap((id) => byId.get(id) ?? []);
      for (const id of heldJobsThatMayHaveStarted(listed, this.workerSlots.get(workerId))) started.add(id);
      const listedIds = new Set(listed.map((job) => job.id));
      for (const id of byId.keys()) if (!listedIds.has(id)) started.add(id);
    }
    return started;
  }

  /**
   * The slots of a worker registered with a prefetch, as its last registration or reconnection recorded them
   * in its audit events (another server's worker, adopted when it went silent); undefined without prefetch.
   */
  private async recordedSlots(workerId: string): Promise<number | undefined> {
    const events = await this.store.listAudit(workerId);
    const last = events.findLast((event) => event.eventType === 'worker.registered' || event.eventType === 'worker.reconnected');
    const slots = last?.details?.slots;
    return typeof slots === 'number' ? slots : undefined;
  }

  /** Drops what this engine keeps in memory about a worker that ended. */
  private forget(workerId: string): void {
    this.ownWorkers.delete(workerId);
    this.lastClaimAt.delete(workerId);
    this.heartbeatsHeard.delete(workerId);
    this.workerSlots.delete(workerId);
    this.prefetchingWorkers.delete(workerId);
    this.lastWorkerRecord.delete(workerId);
    this.issuedTokens.delete(workerId);
    this.cancelsAwaitingReconnect.delete(workerId);
    this.cancelsAwaitingHeartbeat.delete(workerId);
  }

  /** Asks for a scheduling pass at time `at` (ms), unless one is already planned for then or earlier. */
  private wakeAt(at: number): void {
    if (this.stopped || (this.backoffWake !== undefined && this.backoffWake.at <= at)) return;
    clearTimeout(this.backoffWake?.timer);
    const timer = setTimeout(() => {
      this.backoffWake = undefined;
      this.wake();
    }, Math.max(0, at - this.now()) + 1);
    timer.unref();
    this.backoffWake = { at, timer };
  }

  /**
   * The workers this engine decides about: its own, plus workers of another engine that went silent (a dead
   * server's), so their jobs are recovered in seconds by the heartbeat timeout instead of never.
   */
  private schedulable(workers: Worker[]): Worker[] {
    const { heartbeatTimeoutMs, provisioningTimeoutMs } = this.options.config;
    const now = this.now();
    return workers
      .filter((worker) => {
        if (this.ownWorkers.has(worker.id)) return true;
        const pending = worker.state === 'CREATING' || worker.state === 'CONNECTING';
        if (pending) return now - worker.createdAt > provisioningTimeoutMs;
        return worker.lastHeartbeat === undefined || now - worker.lastHeartbeat > heartbeatTimeoutMs;
      })
      .map((worker) =>
        // Disconnected, waiting for it to reconnect: offer it nothing, but let the heartbeat timeout find it.
        worker.state === 'READY' && this.ownWorkers.has(worker.id) && !this.channels.has(worker.id)
          ? { ...worker, state: 'BUSY' as const }
          : worker,
      );
  }

  private async apply(decision: Decision): Promise<void> {
    switch (decision.type) {
      case 'assign':
        return this.assign(decision.jobId, decision.workerId);
      case 'provision':
        return this.provision(decision.provider);
      case 'terminate':
        return this.terminate(decision.workerId, decision.reason);
      case 'lost':
        return this.markLost(decision.workerId, 'no heartbeat within the timeout', (worker) => this.silent(worker));
      case 'wait':
        return;
    }
  }

  /**
   * Claims up to `count` queued jobs for one worker in one store call (`Store.claimJobs`: the store picks them in
   * queue order among those the worker's labels allow, skipping jobs another engine is claiming at the same
   * moment), records them on the worker and sends them. Returns how many it claimed.
   *
   * The claim and the worker's record are two store calls, not one: when a claim commits but its reply is lost
   * for good, its jobs are ASSIGNED to the worker without being on its list, which is what the stranded sweep
   * (`strandedAssignments`) looks for, and they go back to the queue. Listed by the claim itself, they would
   * look delivered and hold the worker's slots until it died.
   */
  private claim(workerId: string, count: number, seen: Worker | undefined): Promise<number> {
    return this.workerRecords.run(workerId, () => this.claimNow(workerId, count, seen));
  }

  /**
   * `claim` in the worker's `workerRecords` queue. `seen` is the worker as the pass read it: when the store adds
   * to a worker's list atomically (`Store.addRunningJobs`, guarded on READY or BUSY), that view will do (a worker's
   * labels are fixed at registration, and only this queue adds to its list); otherwise the worker is read
   * again, since its list is rewritten whole.
   */
  private async claimNow(workerId: string, count: number, seen: Worker | undefined): Promise<number> {
    const channel = this.channels.get(workerId);
    const worker = seen && this.store.addRunningJobs ? seen : await this.store.getWorker(workerId);
    // BUSY: its record still lists jobs whose results it reported (see `reportedResults`); the pass gave it room.
    if (!worker || !channel || (worker.state !== 'READY' && worker.state !== 'BUSY')) return count;
    // The claim time identifies the claim (a retry with the same time gets the same jobs back): one worker's
    // claims, one after another in this queue, each get a later millisecond than the one before.
    const now = Math.max(this.now(), (this.lastClaimAt.get(workerId) ?? 0) + 1);
    this.lastClaimAt.set(workerId, now);
    const claimed = await this.store.claimJobs!({ workerId, labels: worker.labels, limit: count, now });
    if (claimed.length === 0) return 0;
    if (!(await this.recordRunning(worker, claimed.map((job) => job.id)))) return claimed.length;
    for (const job of claimed) await this.sendJob(job, channel);
    return claimed.length;
  }

  /**
   * The job (undefined when unknown) and its stored line count: one read with `Store.getJobAndLogCount`, else
   * the count, then the job.
   */
  private async jobAndLogCount(jobId: string): Promise<{ job: Job | undefined; logCount: number }> {
    if (this.store.getJobAndLogCount) return (await this.store.getJobAndLogCount(jobId)) ?? { job: undefined, logCount: 0 };
    const logCount = await this.store.appendLogs(jobId, []);
    return { job: await this.store.getJob(jobId), logCount };
  }

  /** Sends an assigned job to its worker: a first lease has no lines yet, a later one continues after earlier attempts' lines. */
  private async sendJob(job: Job, channel: WorkerChannel): Promise<void> {
    const firstLogSeq = job.epoch === 1 ? 1 : (await this.store.appendLogs(job.id, [])) + 1;
    channel.runJob(job, firstLogSeq);
    this.notifier.notify(job.id, 'state');
  }

  private assign(jobId: string, workerId: string): Promise<void> {
    return this.workerRecords.run(workerId, () => this.assignNow(jobId, workerId));
  }

  private async assignNow(jobId: string, workerId: string): Promise<void> {
    const [job, worker] = await Promise.all([this.store.getJob(jobId), this.store.getWorker(workerId)]);
    const channel = this.channels.get(workerId);
    if (!job || !worker || !channel) return;
    const assignedAt = this.now();
    const assigned =
      (await this.store.updateJob(
        jobId,
        { states: ['QUEUED'], epoch: job.epoch },
        { state: 'ASSIGNED', workerId, epoch: job.epoch + 1, assignedAt, notBefore: undefined },
        { ...this.event('job.assigned', jobId, { workerId, epoch: job.epoch + 1, attempt: job.attempt }), occurredAt: assignedAt },
      )) ?? (await this.landedInDoubt(jobId, { state: 'ASSIGNED', workerId, epoch: job.epoch + 1, assignedAt }, 'assignedAt'));
    if (!assigned) return;
    if (await this.recordRunning(worker, [jobId])) await this.sendJob(assigned, channel);
  }

  /**
   * Adds jobs just assigned to a worker to its list of running jobs, only while it is still READY or BUSY
   * (another server may have marked it LOST meanwhile; BUSY while its list still holds jobs whose results it
   * reported): in one atomic step with `Store.addRunningJobs`, else as a compare-and-set of the list `worker`
   * holds plus them. When it is neither, the jobs are not sent: the stranded sweep puts them back in the queue.
   */
  private async recordRunning(worker: Worker, added: string[]): Promise<boolean> {
    if (this.store.addRunningJobs) return this.seenRecord(await this.store.addRunningJobs(worker.id, added)) !== undefined;
    const running = [...worker.runningJobIds, ...added];
    const updated = await this.store.updateWorker(worker.id, { states: ['READY', 'BUSY'] }, {
      runningJobIds: running,
      state: running.length >= worker.capacity ? 'BUSY' : 'READY',
      idleSince: undefined,
    });
    return this.seenRecord(updated) !== undefined;
  }

  private async provision(providerName: string): Promise<void> {
    const provider = this.providers.get(providerName)!;
    const workerId = newId('w');
    this.ownWorkers.add(workerId);
    await this.store.insertWorker({
      id: workerId,
      provider: providerName,
      state: 'CREATING',
      capacity: provider.capabilities.workerCapacity,
      runningJobIds: [],
      labels: { ...provider.capabilities.labels },
      createdAt: this.now(),
    });
    const otp = await this.registry.issueOtp(workerId);
    await this.audit('worker.provisioned', workerId, { provider: providerName });
    this.options.observer?.workerProvisioned?.(providerName);
    void this.launch(provider, workerId, otp).catch(this.logFailure('worker start'));
  }

  private async launch(provider: Provider, workerId: string, otp: string): Promise<void> {
    try {
      const tlsCa = this.options.workerTlsCa;
      await provider.createWorker({ workerId, otp, serverAddress: this.options.serverAddress(), ...(tlsCa ? { tlsCa } : {}) });
      await this.store.updateWorker(workerId, { states: ['CREATING'] }, { state: 'CONNECTING' });
    } catch (error) {
      const message = `provider ${provider.name} could not start a worker: ${(error as Error).message}`;
      this.options.logger.error({ err: error, workerId }, message);
      await this.serial.run(() => this.provisioningFailed(provider, workerId, message));
      this.wake();
    }
  }

  /**
   * Retries a failing provider with exponential backoff; after `PROVISIONING_ATTEMPTS` failures in a row it
   * fails the queued jobs only this provider could run, so a broken provider is an error, never a hang.
   */
  private async provisioningFailed(provider: Provider, workerId: string, message: string): Promise<void> {
    await this.store.updateWorker(workerId, {}, { state: 'TERMINATED', endedReason: message });
    this.forget(workerId);
    await this.audit('worker.provisioning_failed', workerId, { message });
    this.options.observer?.provisioningFailed?.(provider.name);
    const failures = (this.provisioningFailures.get(provider.name)?.count ?? 0) + 1;
    if (failures < PROVISIONING_ATTEMPTS) {
      const backoffMs = 250 * 2 ** (failures - 1);
      this.provisioningFailures.set(provider.name, { count: failures, retryAt: this.now() + backoffMs });
      setTimeout(() => this.wake(), backoffMs).unref();
      return;
    }
    this.provisioningFailures.delete(provider.name);
    const others = (await this.store.listWorkers({ states: LIVE })).filter(
      (w) => w.provider === provider.name && this.ownWorkers.has(w.id),
    );
    if (others.length > 0) return;
    for (const job of await this.store.queuedJobs(10_000)) {
      const servedElsewhere = [...this.providers.values()].some(
        (candidate) =>
          candidate !== provider &&
          Object.entries(job.spec.labels).every(([key, value]) => candidate.capabilities.labels[key] === value),
      );
      if (!servedElsewhere) await this.finishWith(job, 'FAILED', 'PROVISIONING_FAILED', message);
    }
  }

  private async terminate(workerId: string, reason: string): Promise<void> {
    const worker = await this.store.updateWorker(workerId, { states: ['CREATING', 'CONNECTING', 'READY'] }, {
      state: 'TERMINATING',
      endedReason: reason,
    });
    if (!worker) return;
    await this.audit('worker.terminating', workerId, { reason });
    const provider = this.providers.get(worker.provider);
    void (async () => {
      try {
        await provider?.destroyWorker(workerId);
      } catch (error) {
        this.options.logger.warn({ err: error, workerId }, 'could not destroy worker');
      }
      await this.workerExited(workerId, reason);
    })().catch(this.logFailure('worker termination'));
  }

  private async markLost(workerId: string, reason: string, stillSilent?: (worker: Worker) => boolean): Promise<void> {
    const worker = await this.workerRecords.run(workerId, async () => {
      const live = await this.store.getWorker(workerId);
      if (!live || !LIVE_WORKER_STATES.has(live.state) || live.state === 'TERMINATING') return undefined;
      // Taken on the pass's earlier read: a worker heard from since (it reconnected, here or to another server) is not lost.
      if (stillSilent && !stillSilent(live)) return undefined;
      assertTransition(WORKER_TRANSITIONS, `worker ${workerId}`, live.state, 'LOST');
      // Guarded on the state read: another server that marks it LOST meanwhile wins, and the loss is recorded,
      // audited and settled once. (A reconnection to another server in between writes no state and is not seen.)
      const lost = await this.store.updateWorker(workerId, { states: [live.state] }, { state: 'LOST', endedReason: reason, runningJobIds: [] });
      return lost ? live : undefined;
    });
    if (!worker) return;
    const slots = this.workerSlots.get(workerId) ?? (await this.recordedSlots(workerId));
    this.forget(workerId);
    await this.audit('worker.lost', workerId, { reason });
    this.channels.get(workerId)?.close();
    this.channels.delete(workerId);
    const message = `worker ${workerId} was lost: ${reason}`;
    const held: Job[] = [];
    for (const jobId of worker.runningJobIds) {
      const job = await this.store.getJob(jobId);
      if (job && !isTerminalJobState(job.state) && job.state !== 'QUEUED' && job.workerId === workerId) held.push(job);
    }
    // Jobs that waited on the worker (prefetch) never started: back to the queue with their attempt unchanged.
    const mayHaveStarted = heldJobsThatMayHaveStarted(held, slots);
    for (const job of held) {
      await this.settleHeldJob(job, mayHaveStarted.has(job.id), 'WORKER_LOST', {
        ran: message,
        unstarted: `${message}, before the job started`,
        cancelled: `cancelled; ${message}`,
      });
    }
    const provider = this.providers.get(worker.provider);
    provider?.destroyWorker(workerId).catch((error: unknown) => {
      this.options.logger.warn({ err: error, workerId }, 'could not clean up a lost worker');
    });
  }

  /**
   * Ends or re-queues an active job whose worker can no longer report it (lost, or this server stops): with a
   * cancel requested, CANCELLED (the worker that would have stopped it is gone); never started (held on the
   * worker, prefetch), back to the queue with its attempt unchanged; else retried while attempts remain, or
   * FAILED with `failureReason`. `messages`: why, for each of those ends.
   */
  private async settleHeldJob(
    job: Job,
    mayHaveStarted: boolean,
    failureReason: FailureReason,
    messages: { ran: string; unstarted: string; cancelled: string },
  ): Promise<void> {
    if (job.cancelRequestedAt !== undefined) await this.finishWith(job, 'CANCELLED', undefined, messages.cancelled);
    else if (!mayHaveStarted) await this.putBackUnstarted(job, messages.unstarted);
    else if (job.attempt < job.spec.maxAttempts) await this.requeue(job, messages.ran, {}, messages.cancelled);
    else await this.finishWith(job, 'FAILED', failureReason, messages.ran);
  }

  /**
   * The job as stored now when a re-queue of `job` (as read) did not match because a cancel was requested of that
   * very lease meanwhile (same state and epoch, `cancelRequestedAt` set); otherwise undefined (it moved on).
   */
  private async cancelAskedOf(job: Job): Promise<Job | undefined> {
    const now = await this.store.getJob(job.id);
    return now?.cancelRequestedAt !== undefined && now.state === job.state && now.epoch === job.epoch ? now : undefined;
  }

  /**
   * Sends an active job back to the queue with `attempt + 1`; it may run again after its retry backoff, whose
   * end is stored with the job (`notBefore`) so that every engine sharing the store, or a restarted one, waits it out.
   * No attempt starts with a cancel request: one that reached the job before the re-queue ends it CANCELLED
   * (callers check `job`); one that landed after that read keeps the job out of the queue (the re-queue is
   * guarded on `cancelRequested: false`, so no other server's claim can take it meanwhile), and the job ends
   * CANCELLED as the attempt that ran left it: its attempt, worker and times, with `cancelMessage`. This never
   * frees the job's place on its worker's record (the caller does), so it may run in the worker's
   * `workerRecords` queue.
   * `extra`: what the run left on the re-queued job (e.g. its exit code); `ended`: what else the run reported,
   * kept only when the job ends CANCELLED.
   */
  private async requeue(job: Job, message: string, extra: Partial<Job>, cancelMessage = `cancelled; ${message}`, ended: Partial<Job> = {}): Promise<boolean> {
    const delayMs = retryBackoffMs(job.attempt, this.options.config.retryBackoffMs);
    const notBefore = this.now() + delayMs;
    const requeued =
      (await this.store.updateJob(job.id, { states: ACTIVE_JOB, epoch: job.epoch, cancelRequested: false }, {
        state: 'QUEUED',
        attempt: job.attempt + 1,
        workerId: undefined,
        assignedAt: undefined,
        startedAt: undefined,
        errorMessage: message,
        notBefore,
        ...extra,
      }, this.event('job.requeued', job.id, { attempt: job.attempt + 1, reason: message, backoffMs: delayMs }))) ??
      (await this.landedInDoubt(job.id, { state: 'QUEUED', workerId: undefined, epoch: job.epoch, attempt: job.attempt + 1, notBefore }, 'notBefore'));
    if (!requeued) {
      // A cancel requested after `job` was read (it keeps the lease's epoch) kept the job from the queue, where
      // another server's claim could have taken it before it ended: it ends here, as the attempt that ran left it.
      const asked = await this.cancelAskedOf(job);
      return asked !== undefined && (await this.finishWith(asked, 'CANCELLED', undefined, cancelMessage, { ...extra, ...ended }, false)) !== undefined;
    }
    // A store that does not know the `cancelRequested` guard re-queues a job a cancel reached meanwhile: it ends now.
    if (requeued.cancelRequestedAt !== undefined) {
      const { attempt, workerId, assignedAt, startedAt } = job;
      await this.finishWith(requeued, 'CANCELLED', undefined, cancelMessage, { attempt, workerId, assignedAt, startedAt, notBefore: undefined, ...ended });
      return true;
    }
    this.wakeAt(notBefore);
    this.notifier.notify(job.id);
    return true;
  }

  /** Whether `worker` (a record) is silent past the heartbeat timeout, as the scheduler judges it (see `schedulingView`). */
  private silent(worker: Worker): boolean {
    return isSilent(this.schedulingView(worker), this.now(), this.options.config.heartbeatTimeoutMs);
  }

  /**
   * The worker as the scheduler counts it here: its reported results' slots free (see `reportedResults`), and its
   * heartbeat as fresh as this engine heard it (a connected worker of its own) and no older than `silenceFloor`.
   */
  private schedulingView(worker: Worker): Worker {
    const heard = this.channels.has(worker.id) ? (this.heartbeatsHeard.get(worker.id) ?? 0) : 0;
    return withHeartbeatFloor(withReportedResultsFreed(worker, this.reportedResults.get(worker.id)), Math.max(this.silenceFloor, heard));
  }

  /** The jobs `worker` (a record) may be sent now, counted as the scheduler does (see `workerRoom`). */
  private roomOf(worker: Worker): number {
    return workerRoom(this.schedulingView(worker), this.workerSlots).room;
  }

  /** Keeps `worker`, as just written in its `workerRecords` queue, as the engine's latest view of it. */
  private seenRecord(worker: Worker | undefined): Worker | undefined {
    if (worker && this.ownWorkers.has(worker.id)) this.lastWorkerRecord.set(worker.id, worker);
    return worker;
  }

  /**
   * Frees a finished job's slot on its worker's record, in the worker's `workerRecords` queue. The jobs of one
   * worker whose releases wait there together (results recorded side by side) are released in one store call.
   * Resolves with the worker as updated, when the update matched.
   */
  private releaseSlot(workerId: string, jobId: string): Promise<Worker | undefined> {
    const waiting = this.pendingReleases.get(workerId);
    if (waiting) {
      waiting.jobIds.push(jobId);
      return waiting.released;
    }
    const jobIds = [jobId];
    const released = this.workerRecords.run(workerId, () => {
      if (this.pendingReleases.get(workerId)?.jobIds === jobIds) this.pendingReleases.delete(workerId);
      return this.releaseSlotNow(workerId, jobIds);
    });
    this.pendingReleases.set(workerId, { jobIds, released });
    return released;
  }

  /**
   * `releaseSlot` of `jobIds` for a caller already in the worker's `workerRecords` queue: one atomic step with
   * `Store.removeRunningJobs`, else a read and a compare-and-set. Resolves with the worker as updated, when
   * the update matched.
   */
  private async releaseSlotNow(workerId: string, jobIds: readonly string[]): Promise<Worker | undefined> {
    if (this.store.removeRunningJobs) return this.seenRecord(await this.store.removeRunningJobs(workerId, jobIds, this.now()));
    // Compare-and-set on the state read: a write outside this queue (a termination) is not overwritten.
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const worker = await this.store.getWorker(workerId);
      if (!worker) return;
      const running = worker.runningJobIds.filter((id) => !jobIds.includes(id));
      const busy = worker.state === 'BUSY' || worker.state === 'READY';
      const updated = await this.store.updateWorker(workerId, { states: [worker.state] }, {
        runningJobIds: running,
        ...(busy ? { state: running.length >= worker.capacity ? 'BUSY' : 'READY' } : {}),
        ...(running.length === 0 ? { idleSince: this.now() } : {}),
      });
      if (updated) return this.seenRecord(updated);
    }
    return undefined;
  }

  /**
   * Ends a job that did not succeed (`state`, with `errorMessage` and `failureReason`, plus `extra`), guarded on
   * its state and epoch as `job` holds them, and frees its place on its worker's record (a QUEUED job holds none)
   * unless `freesSlot` is false (a caller in that worker's `workerRecords` queue, which frees it itself).
   */
  private async finishWith(
    job: Job,
    state: 'FAILED' | 'CANCELLED',
    failureReason: FailureReason | undefined,
    errorMessage: string,
    extra: Partial<Job> = {},
    freesSlot = true,
  ): Promise<Job | undefined> {
    const completedAt = this.now();
    const workerId = 'workerId' in extra ? extra.workerId : job.workerId;
    const done =
      (await this.store.updateJob(job.id, { states: [job.state], epoch: job.epoch }, {
        ...extra,
        state,
        completedAt,
        errorMessage,
        ...(failureReason ? { failureReason } : {}),
      }, this.event(state === 'CANCELLED' ? 'job.cancelled' : 'job.failed', job.id, { reason: errorMessage }))) ??
      (await this.landedInDoubt(job.id, { state, workerId, epoch: job.epoch, completedAt }, 'completedAt'));
    if (!done) return undefined;
    if (freesSlot && job.workerId && job.state !== 'QUEUED') await this.releaseSlot(job.workerId, job.id);
    this.options.observer?.jobFinished?.(done);
    this.notifier.notify(job.id, 'any', done);
    return done;
  }

  /**
   * A compare-and-set whose connection broke after the store committed it is retried (see `withStoreRetry`)
   * and then no longer matches. Called when a job write did not match, it recognises that write as ours when
   * the stored job has the state, worker, lease epoch (and attempt, if given) the write set plus the timestamp
   * `stamp` this very call took from the clock (assignedAt, startedAt, notBefore or completedAt), which no other
   * write (a resent report, another engine's) carries. What follows the write (the worker's runJob, freeing its
   * slot, observer calls) then still runs; the audit event was committed with the write itself.
   *
   * Recognition by content rather than a write token stored with each row: it needs no schema change, and every
   * in-doubt write already sets a fresh timestamp. If something else changed the job between the commit and this
   * read (another engine acting on it), the write is not recognised, as before.
   */
  private async landedInDoubt(
    jobId: string,
    expected: Pick<Job, 'state' | 'epoch'> & Partial<Pick<Job, 'workerId' | 'attempt' | InDoubtStamp>>,
    stamp: InDoubtStamp,
  ): Promise<Job | undefined> {
    const ownStamp = expected[stamp];
    if (ownStamp === undefined) return undefined;
    const job = await this.store.getJob(jobId);
    const ours =
      job !== undefined &&
      job.state === expected.state &&
      job.epoch === expected.epoch &&
      job.workerId === expected.workerId &&
      (expected.attempt === undefined || job.attempt === expected.attempt) &&
      job[stamp] === ownStamp;
    return ours ? job : undefined;
  }

  /** Refuses a report from a stale lease and tells the worker to drop the job (it moved on without it). */
  private async fenced(workerId: string, jobId: string, epoch: number, what: string): Promise<void> {
    this.options.logger.warn({ workerId, jobId, epoch }, `refused a stale ${what} report`);
    if (what === 'result') return; // that run is over already
    const channel = this.channels.get(workerId);
    if (!channel) return;
    const job = await this.store.getJob(jobId);
    const stillLeasedHere = job !== undefined && job.workerId === workerId && !isTerminalJobState(job.state) && job.state !== 'QUEUED';
    if (!stillLeasedHere) channel.cancelJob(jobId, this.options.config.cancelGraceMs);
  }

  private audit(eventType: string, correlationId: string, details: Record<string, unknown>): Promise<void> {
    return this.store.appendAudit(this.event(eventType, correlationId, details));
  }

  /**
   * An audit event to pass with the job change it records (`insertJob`/`updateJob`), so the store writes both in
   * one atomic step and only when the compare-and-set matched: no event is lost or recorded for a change that did
   * not happen, and a change whose commit was in doubt and retried carries its event with it.
   */
  private event(eventType: string, correlationId: string, details: Record<string, unknown>): AuditEvent {
    return { eventType, correlationId, occurredAt: this.now(), details };
  }

  /** For work started in the background: a failure (a store down past its retries) is logged, never unhandled. */
  private logFailure(what: string): (error: unknown) => void {
    return (error) => this.options.logger.error({ err: error }, `${what} could not be recorded: ${(error as Error).message}`);
  }

  private checkRunning(): void {
    if (this.stopped) throw new HodeiError('CLOSED', 'the platform is shutting down and accepts no jobs');
    if (this.draining) {
      throw new HodeiError('DRAINING', 'the server is draining (shutting down) and accepts no new jobs; queue on another server or retry after its restart');
    }
  }

  private now(): number {
    return this.options.clock.now();
  }
}
