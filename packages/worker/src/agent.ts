import { connectivityState, credentials, type ClientDuplexStream, type ClientOptions } from '@grpc/grpc-js';
import {
  JobOutcome,
  emptyLogLines,
  logLineCount,
  WorkerServiceClient,
  type Ack,
  type LogLines,
  type RunJob,
  type ServerMessage,
  type WorkerMessage,
} from '@hodei/core/protocol';
import { version as packageVersion } from '../package.json';
import type { WorkerConfig } from './config';
import { DEFAULT_KILL_GRACE_MS, runJob, type JobExecution, type JobResult } from './job-execution';
import type { LogBatcherOptions } from './log-batcher';
import { OrphanReaper } from './orphan-reaper';
import { installShutdownSignals } from './shutdown-signals';
import { TakenRuns } from './taken-runs';

/**
 * Exit codes of the `hodei-worker` process: `ok` (0) it drained and stopped, `connectionLost` (1) it lost the
 * server for longer than `reconnectTimeoutMs`, `invalidConfig` (2) a `HODEI_*` variable is missing or wrong,
 * `refused` (3) the server refused its registration (bad, reused or expired token).
 */
export const EXIT_CODES = { ok: 0, connectionLost: 1, invalidConfig: 2, refused: 3 } as const;

/** Heartbeat period used when the server's Registered says 0. */
const DEFAULT_HEARTBEAT_MS = 5_000;
/** Reconnection backoff: from the first delay, doubling, up to the longest. */
const RECONNECT_FIRST_DELAY_MS = 100;
const RECONNECT_MAX_DELAY_MS = 5_000;
/** How long a worker whose stream broke keeps trying to reconnect before it gives up; default. */
const DEFAULT_RECONNECT_TIMEOUT_MS = 60_000;
/** Text of unacknowledged log batches kept; past this, jobs' output is paused (back-pressure) until acks come. */
const DEFAULT_MAX_UNACKED_BYTES = 16 * 1024 * 1024;
/** With reports unacknowledged and no ack for this long, they are all sent again; default. */
const DEFAULT_ACK_TIMEOUT_MS = 2_000;
/** The longest a Register may wait for its answer (less, when reconnecting, as the reconnect timeout runs out). */
const REGISTRATION_TIMEOUT_MS = 30_000;
/**
 * HTTP/2 pings on the worker's connection: a server that went silent without closing it (its host gone, a network
 * partition, a hung proxy) fails the stream within about 15 s instead of when TCP gives up (15 min or never).
 */
const KEEPALIVE_CHANNEL_OPTIONS = {
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
} as const;

/**
 * A start not carried by a report within this long is reported with the lines held so far (the header), or an
 * empty batch. A job that ends sooner says its start, lines and result in one report.
 */
const START_REPORT_DELAY_MS = 5;

/** Tuning of an embedded or spawned worker. */
export interface StartWorkerOptions {
  /** Version reported at registration; default this package's version. */
  version?: string;
  /** Grace between SIGTERM and SIGKILL for timeouts and cancels without their own; default 5 s. */
  killGraceMs?: number;
  /** How long a job's pipes may stay open after its main process exited; default 1 s. */
  pipeGraceMs?: number;
  /** Handle SIGTERM/SIGINT (drain, then cancel, then exit); default false (the bin turns it on). */
  handleSignals?: boolean;
  /** After a drain, how long to wait for the server to close the stream; default 2 s. */
  closeTimeoutMs?: number;
  /** Environment jobs inherit (minus HODEI_OTP_TOKEN); default a copy of `process.env` taken when the worker starts. */
  baseEnv?: NodeJS.ProcessEnv;
  /** How output is batched and capped before it is sent (see {@link LogBatcherOptions}). */
  batching?: LogBatcherOptions;
  /** Diagnostic lines; default stderr, prefixed with the worker id. */
  log?: (line: string) => void;
  /** Extra gRPC channel options. */
  channelOptions?: Partial<ClientOptions>;
  /**
   * When the stream breaks after registration, how long to keep reconnecting (100 ms doubling to 5 s) with the
   * session token while running jobs go on; default 60 s. Past it the jobs are killed and the worker exits 1.
   */
  reconnectTimeoutMs?: number;
  /**
   * Text (UTF-16 code units) of log batches kept until the server acknowledged them (it does once they are
   * stored); past it jobs' output is paused until acks come. Default 16 MiB.
   */
  maxUnackedBytes?: number;
  /** With reports unacknowledged and no ack for this long, they are all sent again (the server skips what it has); default 2 s. */
  ackTimeoutMs?: number;
}

/** A running worker. */
export interface WorkerHandle {
  /** The id the worker registered with (`HODEI_WORKER_ID`). */
  readonly workerId: string;
  /** Resolves with the exit code once the worker stopped: 0 drained, 1 connection lost, 3 refused. */
  readonly done: Promise<number>;
  /** Drains (no new jobs, running ones finish; with `cancelJobs` they are cancelled) and waits. */
  stop(options?: { cancelJobs?: boolean }): Promise<void>;
}

type State = 'connecting' | 'ready' | 'draining' | 'closing' | 'lost' | 'closed';
type Payload = NonNullable<WorkerMessage['payload']>;

/** Identifies one run of a job (its lease epoch): the server orders and acknowledges reports per run. */
function runKey(jobId: string, epoch: number): string {
  return `${jobId}/${epoch}`;
}

/** A log batch or a result, kept until the server acknowledges it. */
interface Unacked {
  payload: Payload;
  jobId: string;
  epoch: number;
  /** Seq of the batch's last line; for a result, the run's last line. */
  lastSeq: number;
  finished: boolean;
  bytes: number;
}

/** Refusal codes of a failure on the server's side, not of the worker's credentials: a reconnection is tried again. */
const TRANSIENT_REFUSALS = new Set(['UNAVAILABLE', 'INTERNAL', 'DEADLINE_EXCEEDED', 'RESOURCE_EXHAUSTED', 'ABORTED']);

class WorkerAgent implements WorkerHandle {
  readonly workerId: string;
  readonly done: Promise<number>;
  private readonly client: WorkerServiceClient;
  private readonly jobs = new Map<string, JobExecution>();
  /**
   * Jobs the server sent beyond the worker's capacity (its prefetch), not started: no process, no timeout
   * running. They start in the order they came (a Map keeps insertion order) as slots free.
   */
  private readonly waiting = new Map<string, RunJob>();
  /** The runs it took (started, held or refused): a RunJob repeated after a reconnection is not run twice. */
  private readonly takenRuns = new TakenRuns();
  /** No job running and none waiting: what every idle and drained check asks. */
  private get holdsNoJob(): boolean {
    return this.jobs.size === 0 && this.waiting.size === 0;
  }
  /** From the last Registered: how many jobs beyond its capacity the server may send (0: no more than its capacity). */
  private prefetch = 0;
  /** From the last Registered: the server takes back a job given back unstarted (RETURNED) from any worker. */
  private serverTakesReturned = false;
  /** Whether a job it will not run can be given back (RETURNED: re-queued uncounted) rather than failed. */
  private get takesBack(): boolean {
    return this.prefetch > 0 || this.serverTakesReturned;
  }
  /**
   * The most jobs beyond its capacity it accepts: the largest prefetch granted in this session. A server that
   * grants less after a reconnection (an older one, a rollback) may still send what its record allows.
   */
  private holdLimit = 0;
  private readonly drainWaiters: Array<() => void> = [];
  private readonly log: (line: string) => void;
  /** Kills the jobs' process groups if this process dies, SIGKILL included (started at the first job). */
  private readonly reaper: OrphanReaper;
  private call: ClientDuplexStream<WorkerMessage, ServerMessage> | undefined;
  private streamOpen = false;
  /** The current stream has been answered with Registered: messages may go out directly. */
  private registered = false;
  /** From the last Registered: what a reconnection presents (the one-time token is spent). */
  private sessionToken: string | undefined;
  /** From the last Registered: the server stores lines carried by a JobFinished (an older one does not). */
  private serverReadsFinishedLines = false;
  /** What jobs inherit: `options.baseEnv`, else `process.env` copied once (reading it costs a call per variable). */
  private readonly baseEnv: NodeJS.ProcessEnv;
  /** Reports (log batches, results) not acknowledged yet, in the order they were made: resent on reconnection. */
  private unacked: Unacked[] = [];
  private unackedBytes = 0;
  /** When an ack last arrived (or the first report since the last ack was made). */
  private lastAckProgress = 0;
  private resendTimer: NodeJS.Timeout | undefined;
  /**
   * Runs (`jobId/epoch`) whose reports are being resent after a stall: each ack of such a run sends its next
   * unacknowledged report, since the server refuses a batch (or result) until the lines before it are stored.
   */
  private readonly recovering = new Set<string>();
  private reconnectAttempts = 0;
  private reconnectDeadline: number | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  /** Ends a Register that got no answer in time (see REGISTRATION_TIMEOUT_MS). */
  private registrationTimer: NodeJS.Timeout | undefined;
  private state: State = 'connecting';
  private heartbeat: NodeJS.Timeout | undefined;
  private closeTimer: NodeJS.Timeout | undefined;
  private uninstallSignals = () => undefined as void;
  private resolveDone!: (code: number) => void;

  constructor(
    private readonly config: WorkerConfig,
    private readonly options: StartWorkerOptions,
  ) {
    this.workerId = config.workerId;
    this.log = options.log ?? ((line) => process.stderr.write(`hodei-worker[${config.workerId}]: ${line}\n`));
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    this.reaper = new OrphanReaper({ log: this.log });
    this.baseEnv = options.baseEnv ?? { ...process.env };
    const channelCredentials = config.tls
      ? credentials.createSsl(config.tls.ca === undefined ? null : Buffer.from(config.tls.ca, 'utf8'))
      : credentials.createInsecure();
    // channelz (grpc-js's per-call introspection counters) costs CPU on every message and nothing reads it.
    this.client = new WorkerServiceClient(config.serverAddress, channelCredentials, {
      'grpc.enable_channelz': 0,
      ...KEEPALIVE_CHANNEL_OPTIONS,
      ...options.channelOptions,
    });
  }

  start(): void {
    if (this.options.handleSignals) {
      this.uninstallSignals = installShutdownSignals({
        drain: () => this.beginDrain(),
        cancel: () => this.cancelAll(),
        abort: () => this.abort(),
        log: this.log,
      });
    }
    this.connect();
  }

  stop(options: { cancelJobs?: boolean } = {}): Promise<void> {
    this.beginDrain();
    if (options.cancelJobs) this.cancelAll();
    return this.done.then(() => undefined);
  }

  /** Opens the stream and registers: with the one-time token the first time, with the session token after. */
  private connect(): void {
    if (this.state === 'closed' || this.state === 'closing') return;
    const call = this.client.connect();
    this.call = call;
    this.streamOpen = true;
    this.registered = false;
    // Events of a stream that was replaced by a reconnection are ignored.
    call.on('data', (message: ServerMessage) => call === this.call && this.onMessage(message));
    call.on('error', (error: Error) => call === this.call && this.onStreamEnd(`the stream failed: ${error.message}`));
    call.on('end', () => call === this.call && this.onStreamEnd('the server closed the stream'));
    call.on('drain', () => call === this.call && this.releaseDrainWaiters());
    const { workerId, otpToken, capacity, labels } = this.config;
    const version = this.options.version ?? packageVersion;
    const credentials = this.sessionToken === undefined ? { otp: otpToken, sessionToken: '' } : { otp: '', sessionToken: this.sessionToken };
    call.write({
      payload: { $case: 'register', value: { workerId, ...credentials, capacity, labels, version, readsRunJobAcks: true, holdsPrefetchedJobs: true, ignoresRepeatedRuns: true } },
    });
    // A connection that never comes up (a server behind a black hole) must not hold the worker: the stream is ended,
    // and the reconnection, or its deadline, takes over. A Register on a connection that is up is waited for (the
    // server may be riding out a store outage, and cancelling it would race its new session token); keepalive
    // pings notice a server that went silent there.
    const left = this.reconnectDeadline === undefined ? REGISTRATION_TIMEOUT_MS : Math.max(0, this.reconnectDeadline - Date.now());
    this.armRegistrationTimer(call, Math.min(REGISTRATION_TIMEOUT_MS, left));
  }

  /** See `connect`: ends `call` after `ms` unless it registered, or its connection is up (then looks again later). */
  private armRegistrationTimer(call: ClientDuplexStream<WorkerMessage, ServerMessage>, ms: number): void {
    clearTimeout(this.registrationTimer);
    this.registrationTimer = setTimeout(() => {
      if (call !== this.call || this.registered) return;
      if (this.client.getChannel().getConnectivityState(false) === connectivityState.READY) return this.armRegistrationTimer(call, REGISTRATION_TIMEOUT_MS);
      call.cancel();
    }, ms);
    this.registrationTimer.unref();
  }

  private onMessage(message: ServerMessage): void {
    const payload = message.payload;
    if (!payload || this.state === 'closed' || this.state === 'lost') return;
    switch (payload.$case) {
      case 'registered': {
        clearTimeout(this.registrationTimer);
        this.sessionToken = payload.value.sessionToken;
        this.serverReadsFinishedLines = payload.value.readsJobFinishedLines;
        this.prefetch = Math.max(0, payload.value.prefetch);
        this.holdLimit = Math.max(this.holdLimit, this.prefetch);
        this.serverTakesReturned = payload.value.takesReturnedJobs;
        this.registered = true;
        this.reconnectAttempts = 0;
        this.reconnectDeadline = undefined;
        if (this.state === 'connecting') {
          this.state = 'ready';
          const interval = payload.value.heartbeatIntervalMs > 0 ? payload.value.heartbeatIntervalMs : DEFAULT_HEARTBEAT_MS;
          this.heartbeat = setInterval(() => this.sendHeartbeat(), Math.min(interval, 2 ** 31 - 1));
          const ackTimeout = this.options.ackTimeoutMs ?? DEFAULT_ACK_TIMEOUT_MS;
          this.resendTimer = setInterval(() => this.resendIfStalled(ackTimeout), Math.max(10, ackTimeout / 2));
        } else {
          this.log(`reconnected; sending ${this.unacked.length} unacknowledged report(s)`);
        }
        this.resendUnacked();
        this.releaseDrainWaiters();
        if (this.state === 'draining') this.returnWaiting();
        this.startWaiting();
        return;
      }
      case 'ack':
        return this.onAck(payload.value);
      case 'refused':
        // A reconnection the server could not handle (its store unreachable, say) is tried again, within the
        // reconnect timeout, as a broken stream would be: the jobs running here are still this worker's.
        if (this.state !== 'connecting' && TRANSIENT_REFUSALS.has(payload.value.code)) {
          const reason = `reconnection refused for now (${payload.value.code}): ${payload.value.message}`;
          const call = this.call;
          this.onStreamEnd(reason);
          call?.cancel();
          return;
        }
        this.log(`registration refused (${payload.value.code}): ${payload.value.message}`);
        // Refused on reconnection: the server moved on without us (e.g. marked us LOST); our jobs are stale.
        this.waiting.clear();
        for (const job of this.jobs.values()) job.kill();
        return this.finalize(EXIT_CODES.refused);
      case 'runJob':
        // The job first: a draining worker whose last result the acks acknowledge closes its stream then, and a
        // refusal must be on its way (unacknowledged, so it is waited for) before that.
        this.takeJob(payload.value);
        for (const ack of payload.value.acks) this.onAck(ack);
        return;
      case 'cancelJob':
        if (this.waiting.has(payload.value.jobId)) return this.endWaiting(payload.value.jobId, JobOutcome.JOB_OUTCOME_CANCELLED, 'cancelled before it started');
        return this.jobs.get(payload.value.jobId)?.cancel(payload.value.graceMs);
      case 'drain':
        return this.beginDrain();
    }
  }

  /**
   * A job the server sent: started when a slot is free and no job waits before it, else kept waiting (up to the
   * prefetch the server granted), else refused. A worker that drains gives it back to a server that granted a
   * prefetch (it re-queues it) and refuses it otherwise, as before prefetch.
   */
  private takeJob(run: RunJob): void {
    const { jobId, spec } = run;
    // A duplicate delivery of a job it holds, or a run it already took (a server re-sends its assigned jobs when
    // the worker reconnects): nothing more to do, its reports are on their way.
    if (this.jobs.has(jobId) || this.waiting.has(jobId) || this.takenRuns.has(jobId, run.epoch)) return;
    this.takenRuns.add(jobId, run.epoch);
    const draining = this.state !== 'ready';
    const full = !draining && this.jobs.size + this.waiting.size >= this.config.capacity + this.holdLimit;
    const refusal = draining
      ? `worker ${this.workerId} is draining and accepts no more jobs`
      : full
        ? `worker ${this.workerId} is at capacity (${this.config.capacity}${this.holdLimit > 0 ? `, and ${this.waiting.size} job(s) waiting` : ''})`
        : spec === undefined
          ? 'RunJob carried no job spec'
          : undefined;
    if (refusal !== undefined) {
      this.log(`job ${jobId} not started: ${refusal}`);
      // A server that takes jobs back (it says so, or it granted a prefetch) re-queues a job given back (RETURNED)
      // without counting an attempt: one sent to a draining worker, or beyond the room the server gave (its record
      // counted fewer jobs than this worker holds), is not the job's failure. An older server that granted no
      // prefetch does not know RETURNED: the job fails to start there, as before.
      const outcome = (draining || full) && this.takesBack ? JobOutcome.JOB_OUTCOME_RETURNED : JobOutcome.JOB_OUTCOME_FAILED_TO_START;
      this.reportNotStarted(run, outcome, refusal);
      // A job given back for want of room: the server's record of this worker counts fewer jobs than it holds,
      // so the worker drains (gives back what waits, exits once its running jobs end) and a fresh worker with a
      // true record takes its place. It decides this itself, not on the server's Drain, which a broken stream
      // can lose (the server marks it DRAINING from the RETURNED report, which is resent until acknowledged).
      if (full && outcome === JobOutcome.JOB_OUTCOME_RETURNED) this.beginDrain();
      return;
    }
    if (this.jobs.size < this.config.capacity && this.waiting.size === 0) return this.startJob(run);
    this.waiting.set(jobId, run);
  }

  /**
   * Starts waiting jobs, oldest first, while slots are free (a draining worker still holds some only when its
   * server granted no prefetch: it runs them out). None starts while the stream is broken, until the worker is
   * registered again: a server that marks it lost meanwhile re-queues them as never started, so they must not
   * run here too.
   */
  private startWaiting(): void {
    for (const [jobId, run] of this.waiting) {
      if (this.jobs.size >= this.config.capacity || (this.state !== 'ready' && this.state !== 'draining') || !this.connected) return;
      this.waiting.delete(jobId);
      this.startJob(run);
    }
  }

  /** Ends a waiting job without starting it: reported `outcome` (cancelled, or returned to the server) with `reason`. */
  private endWaiting(jobId: string, outcome: JobOutcome, reason: string): void {
    const run = this.waiting.get(jobId);
    if (!run) return;
    this.waiting.delete(jobId);
    this.reportNotStarted(run, outcome, reason);
    if (this.holdsNoJob) this.onIdle();
  }

  /** Reports a job that was not started: no lines, no duration. */
  private reportNotStarted(run: RunJob, outcome: JobOutcome, reason: string): void {
    const firstSeq = run.firstLogSeq > 0 ? run.firstLogSeq : 1;
    const result: JobResult = { outcome, exitCode: -1, signal: '', durationMs: 0, errorMessage: reason };
    this.report({ $case: 'jobFinished', value: { jobId: run.jobId, epoch: run.epoch, ...result, lastLogSeq: firstSeq - 1, started: false, lines: undefined } });
  }

  /** Starts a job's process now (the caller checked it has a slot and a spec). */
  private startJob(run: RunJob): void {
    const { jobId, epoch } = run;
    const spec = run.spec!;
    const firstSeq = run.firstLogSeq > 0 ? run.firstLogSeq : 1;
    // The start rides on the next batch (or the result): no message of its own unless no batch follows soon.
    let startUnreported = false;
    let pid = 0;
    /** When the process started (performance.now()): the start report says how long before it was sent. */
    let spawnedAt = 0;
    let lastLogSeq = firstSeq - 1;
    const reportLines = (lines: LogLines) => {
      const started = startUnreported;
      startUnreported = false;
      lastLogSeq = lines.firstSeq + logLineCount(lines) - 1;
      const startedAgoMs = started ? Math.round(performance.now() - spawnedAt) : 0;
      return this.report({ $case: 'logBatch', value: { jobId, epoch, lines, started, pid: started ? pid : 0, startedAgoMs } });
    };
    const execution = runJob({
      jobId,
      spec,
      sink: reportLines,
      whenWritable: (resume) => this.drainWaiters.push(resume),
      onStarted: (startedPid) => {
        startUnreported = true;
        pid = startedPid;
        spawnedAt = performance.now();
        setTimeout(() => {
          if (startUnreported) execution.flushLogs(); // the header, and any output waiting for its batch
          if (startUnreported) reportLines(emptyLogLines(lastLogSeq + 1));
        }, START_REPORT_DELAY_MS);
      },
      processGroups: this.reaper,
      killGraceMs: this.options.killGraceMs ?? DEFAULT_KILL_GRACE_MS,
      ...(this.options.pipeGraceMs !== undefined ? { pipeGraceMs: this.options.pipeGraceMs } : {}),
      baseEnv: this.baseEnv,
      batching: { ...this.options.batching, firstSeq },
      lastLinesWithResult: true,
    });
    this.jobs.set(jobId, execution);
    void execution.done.then(({ lines, ...result }) => {
      const started = startUnreported;
      startUnreported = false;
      // The run's last lines travel with its result: a short job's whole run is one report.
      if (lines) lastLogSeq = lines.firstSeq + logLineCount(lines) - 1;
      this.report({ $case: 'jobFinished', value: { jobId, epoch, ...result, lastLogSeq, started, lines } });
      this.jobs.delete(jobId);
      this.startWaiting();
      if (this.holdsNoJob) this.onIdle();
    });
  }

  private onIdle(): void {
    if (this.state === 'draining') this.closeWhenAcked();
    else if (this.state === 'lost') this.finalize(EXIT_CODES.connectionLost);
  }

  /**
   * No new jobs; the running ones finish. Jobs waiting for a slot (prefetch) are given back to the server, which
   * re-queues them without counting an attempt: they run on another worker instead of delaying this one's exit.
   */
  private beginDrain(): void {
    if (this.state !== 'connecting' && this.state !== 'ready') return;
    this.state = 'draining';
    this.returnWaiting();
    if (this.holdsNoJob) this.closeWhenAcked();
    else this.log(`draining: waiting for ${this.jobs.size} running job(s) and ${this.waiting.size} waiting`);
  }

  /**
   * Gives the waiting jobs back (`RETURNED`), when registered with a server that grants a prefetch now (it
   * re-queues them). With a server that grants none (an older one: it would fail them), they stay and run out;
   * with no server, they wait for the registration (see `registered`).
   */
  private returnWaiting(): void {
    if (!this.connected || this.prefetch === 0) return;
    for (const jobId of [...this.waiting.keys()]) this.endWaiting(jobId, JobOutcome.JOB_OUTCOME_RETURNED, `worker ${this.workerId} is draining`);
  }

  /** Stops every running job; the waiting ones end cancelled, unstarted. */
  private cancelAll(): void {
    for (const jobId of [...this.waiting.keys()]) this.endWaiting(jobId, JobOutcome.JOB_OUTCOME_CANCELLED, 'cancelled before it started (the worker stops)');
    for (const job of this.jobs.values()) job.cancel();
  }

  /** A drained worker closes once its last reports were acknowledged (an ack completes it otherwise). */
  private closeWhenAcked(): void {
    if (this.unacked.length === 0) this.closeGracefully();
  }

  /** Ends our side of the stream; the server ends its side and `onStreamEnd` completes the exit. */
  private closeGracefully(): void {
    this.state = 'closing';
    this.stopHeartbeat();
    if (this.streamOpen) this.call?.end();
    this.closeTimer = setTimeout(() => this.finalize(EXIT_CODES.ok), this.options.closeTimeoutMs ?? 2_000);
  }

  private onStreamEnd(reason: string): void {
    if (!this.streamOpen) return;
    this.streamOpen = false;
    this.releaseDrainWaiters();
    this.registered = false;
    if (this.state === 'closing') return this.finalize(EXIT_CODES.ok);
    if (this.state === 'closed') return;
    if (this.sessionToken !== undefined && this.state !== 'lost') return this.scheduleReconnect(reason);
    this.giveUp(reason);
  }

  /** Tries again after a backoff (100 ms doubling to 5 s) until the reconnect timeout; running jobs go on. */
  private scheduleReconnect(reason: string): void {
    const now = Date.now();
    this.reconnectDeadline ??= now + (this.options.reconnectTimeoutMs ?? DEFAULT_RECONNECT_TIMEOUT_MS);
    const delay = Math.min(RECONNECT_MAX_DELAY_MS, RECONNECT_FIRST_DELAY_MS * 2 ** Math.min(this.reconnectAttempts, 16));
    this.reconnectAttempts += 1;
    if (now + delay > this.reconnectDeadline) return this.giveUp(`${reason}; could not reconnect in time`);
    this.log(`${reason}; reconnecting in ${delay} ms`);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connect();
    }, delay);
  }

  /** A lost stream that cannot be recovered ends the worker: its jobs would be orphaned otherwise. */
  private giveUp(reason: string): void {
    const where = this.state === 'connecting' ? `could not register with ${this.config.serverAddress}: ` : '';
    const jobs = this.jobs.size > 0 ? `; killing ${this.jobs.size} running job(s)` : '';
    this.log(`${where}${reason}${jobs}; exiting`);
    this.state = 'lost';
    this.stopHeartbeat();
    // Jobs waiting for a slot are dropped: the server marks this worker lost and re-queues them.
    this.waiting.clear();
    for (const job of this.jobs.values()) job.kill();
    if (this.jobs.size === 0) this.finalize(EXIT_CODES.connectionLost);
  }

  /** Third signal: kill every job's group now and stop. */
  private abort(): void {
    for (const job of this.jobs.values()) job.kill();
    this.finalize(EXIT_CODES.connectionLost);
  }

  private finalize(code: number): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.stopHeartbeat();
    if (this.closeTimer) clearTimeout(this.closeTimer);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    clearTimeout(this.registrationTimer);
    if (this.resendTimer) clearInterval(this.resendTimer);
    this.uninstallSignals();
    this.streamOpen = false;
    this.call?.cancel();
    this.client.close();
    this.releaseDrainWaiters();
    void this.reaper.close().then(() => this.resolveDone(code));
  }

  private get connected(): boolean {
    return this.streamOpen && this.registered && this.call !== undefined && !this.call.writableEnded;
  }

  /**
   * Keeps a log batch or a result until the server acknowledges it, and writes it now when connected.
   * Returns false (pause the job's output) when the stream is full or too much is unacknowledged.
   */
  private report(payload: Extract<Payload, { $case: 'logBatch' | 'jobFinished' }>): boolean {
    if (this.state === 'closed') return true;
    const { jobId, epoch } = payload.value;
    const entry: Unacked =
      payload.$case === 'logBatch'
        ? { payload, jobId, epoch, lastSeq: payload.value.lines!.firstSeq + logLineCount(payload.value.lines) - 1, finished: false, bytes: payload.value.lines!.text.length }
        : { payload, jobId, epoch, lastSeq: payload.value.lastLogSeq, finished: true, bytes: payload.value.lines?.text.length ?? 0 };
    if (this.unacked.length === 0) this.lastAckProgress = Date.now();
    this.unacked.push(entry);
    this.unackedBytes += entry.bytes;
    const written = this.connected ? this.write(payload) : true;
    return written && this.unackedBytes < (this.options.maxUnackedBytes ?? DEFAULT_MAX_UNACKED_BYTES);
  }

  /** The server has the run's lines up to `logSeq` (and its result, with `finished`): forget them. */
  private onAck(ack: Ack): void {
    const before = this.unacked.length;
    this.unacked = this.unacked.filter((entry) => {
      const acked = entry.jobId === ack.jobId && entry.epoch === ack.epoch && (ack.finished || (!entry.finished && entry.lastSeq <= ack.logSeq));
      if (acked) this.unackedBytes -= entry.bytes;
      return !acked;
    });
    if (this.unacked.length === before) return;
    this.lastAckProgress = Date.now();
    const run = runKey(ack.jobId, ack.epoch);
    if (this.recovering.has(run)) {
      const next = this.unacked.find((entry) => runKey(entry.jobId, entry.epoch) === run);
      if (next && this.connected) this.write(next.payload);
      else this.recovering.delete(run);
    }
    if (this.unackedBytes < (this.options.maxUnackedBytes ?? DEFAULT_MAX_UNACKED_BYTES)) this.releaseDrainWaiters();
    if (this.state === 'draining' && this.holdsNoJob) this.closeWhenAcked();
  }

  /**
   * Writes every unacknowledged report again, in order, on a new stream (after Registered): the server skips
   * lines and results it already has. One copy at most, so memory stays bounded by `maxUnackedBytes`.
   */
  private resendUnacked(): void {
    if (!this.connected) return;
    this.recovering.clear();
    for (const entry of this.unacked) this.write(entry.payload);
  }

  /**
   * No ack for `ackTimeoutMs` while reports wait (the store refused them, or they were lost): send each run's
   * oldest unacknowledged report again, the only one the server can store before the gap is filled; the rest
   * follow one by one as acks arrive (see {@link onAck}). Nothing is resent while earlier writes still wait in
   * the stream (the server is not reading): copies would pile up in memory and delay the heartbeats.
   */
  private resendIfStalled(ackTimeoutMs: number): void {
    if (this.unacked.length === 0 || !this.connected || Date.now() - this.lastAckProgress < ackTimeoutMs) return;
    this.lastAckProgress = Date.now();
    const call = this.call!;
    if (call.writableNeedDrain || call.writableLength > 0) return;
    const oldest = new Map<string, Unacked>();
    for (const entry of this.unacked) {
      const run = runKey(entry.jobId, entry.epoch);
      if (!oldest.has(run)) oldest.set(run, entry);
    }
    this.log(`no acknowledgement for ${ackTimeoutMs} ms; resending the oldest unacknowledged report of ${oldest.size} run(s)`);
    for (const [run, entry] of oldest) {
      this.recovering.add(run);
      this.write(entry.payload);
    }
  }

  /**
   * Writes a report on the current stream. A result carrying lines goes as a LogBatch of them and then the
   * result to a server that does not read lines on a JobFinished (an older one).
   */
  private write(payload: Payload): boolean {
    const call = this.call!;
    if (payload.$case !== 'jobFinished' || payload.value.lines === undefined || this.serverReadsFinishedLines) return call.write({ payload });
    const { lines, ...finished } = payload.value;
    call.write({ payload: { $case: 'logBatch', value: { jobId: finished.jobId, epoch: finished.epoch, lines, started: false, pid: 0, startedAgoMs: 0 } } });
    return call.write({ payload: { $case: 'jobFinished', value: { ...finished, lines: undefined } } });
  }

  private sendHeartbeat(): void {
    if (this.connected) this.call!.write({ payload: { $case: 'heartbeat', value: { runningJobIds: [...this.jobs.keys()] } } });
  }

  private stopHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }

  private releaseDrainWaiters(): void {
    for (const resume of this.drainWaiters.splice(0)) resume();
  }
}

/**
 * Starts a worker: connects to `config.serverAddress`, registers with the one-time token, then runs the
 * jobs the server sends until it is drained, stopped or its stream is lost.
 *
 * @example What the hodei-worker bin does (a provider sets the HODEI_* variables)
 * ```ts
 * const worker = startWorker(readWorkerConfig(process.env), { handleSignals: true });
 * process.exitCode = await worker.done; // see EXIT_CODES
 * ```
 */
export function startWorker(config: WorkerConfig, options: StartWorkerOptions = {}): WorkerHandle {
  const agent = new WorkerAgent(config, options);
  agent.start();
  return agent;
}
