import { credentials, type ClientDuplexStream, type ClientOptions } from '@grpc/grpc-js';
import {
  JobOutcome,
  WorkerServiceClient,
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
/** Messages kept while disconnected; past this, jobs' output is paused (back-pressure) until reconnected. */
const DEFAULT_MAX_BUFFERED_MESSAGES = 64;
/**
 * Messages last written, resent after a reconnection: those still in flight when the stream broke would be
 * lost otherwise (the server skips log lines it already stored by their line number; results are idempotent).
 */
const RESEND_ON_RECONNECT = 64;

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
  /** Environment jobs inherit (minus HODEI_OTP_TOKEN); default `process.env`. */
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
  /** Messages (log batches, results) buffered while disconnected before jobs' output is paused; default 256. */
  maxBufferedMessages?: number;
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

class WorkerAgent implements WorkerHandle {
  readonly workerId: string;
  readonly done: Promise<number>;
  private readonly client: WorkerServiceClient;
  private readonly jobs = new Map<string, JobExecution>();
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
  /** Messages waiting for a (re)connection, in order. */
  private readonly outbox: Payload[] = [];
  /** The last messages written to a stream (see RESEND_ON_RECONNECT). */
  private readonly recentlySent: Payload[] = [];
  private reconnectAttempts = 0;
  private reconnectDeadline: number | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
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
    const channelCredentials = config.tls
      ? credentials.createSsl(config.tls.ca === undefined ? null : Buffer.from(config.tls.ca, 'utf8'))
      : credentials.createInsecure();
    this.client = new WorkerServiceClient(config.serverAddress, channelCredentials, options.channelOptions);
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
    call.write({ payload: { $case: 'register', value: { workerId, ...credentials, capacity, labels, version } } });
  }

  private onMessage(message: ServerMessage): void {
    const payload = message.payload;
    if (!payload || this.state === 'closed' || this.state === 'lost') return;
    switch (payload.$case) {
      case 'registered': {
        this.sessionToken = payload.value.sessionToken;
        this.registered = true;
        this.reconnectAttempts = 0;
        this.reconnectDeadline = undefined;
        if (this.state === 'connecting') {
          this.state = 'ready';
          const interval = payload.value.heartbeatIntervalMs > 0 ? payload.value.heartbeatIntervalMs : DEFAULT_HEARTBEAT_MS;
          this.heartbeat = setInterval(() => this.sendHeartbeat(), Math.min(interval, 2 ** 31 - 1));
        } else {
          this.log(`reconnected; sending ${this.outbox.length} buffered message(s)`);
        }
        if (this.recentlySent.length > 0) {
          for (const recent of this.recentlySent) this.call?.write({ payload: recent });
        }
        for (const buffered of this.outbox.splice(0)) this.write(buffered);
        this.releaseDrainWaiters();
        return;
      }
      case 'refused':
        this.log(`registration refused (${payload.value.code}): ${payload.value.message}`);
        // Refused on reconnection: the server moved on without us (e.g. marked us LOST); our jobs are stale.
        for (const job of this.jobs.values()) job.kill();
        return this.finalize(EXIT_CODES.refused);
      case 'runJob':
        return this.startJob(payload.value);
      case 'cancelJob':
        return this.jobs.get(payload.value.jobId)?.cancel(payload.value.graceMs);
      case 'drain':
        return this.beginDrain();
    }
  }

  private startJob(run: RunJob): void {
    const { jobId, epoch, spec } = run;
    if (this.jobs.has(jobId)) return; // a duplicate delivery of a job already running
    const refusal =
      this.state !== 'ready'
        ? `worker ${this.workerId} is draining and accepts no more jobs`
        : this.jobs.size >= this.config.capacity
          ? `worker ${this.workerId} is at capacity (${this.config.capacity})`
          : spec === undefined
            ? 'RunJob carried no job spec'
            : undefined;
    if (refusal !== undefined || spec === undefined) {
      this.log(`job ${jobId} not started: ${refusal}`);
      const result: JobResult = { outcome: JobOutcome.JOB_OUTCOME_FAILED_TO_START, exitCode: -1, signal: '', durationMs: 0, errorMessage: refusal ?? '' };
      this.send({ $case: 'jobFinished', value: { jobId, epoch, ...result } });
      return;
    }
    const execution = runJob({
      jobId,
      spec,
      sink: (entries) => this.send({ $case: 'logBatch', value: { jobId, epoch, entries } }),
      whenWritable: (resume) => this.drainWaiters.push(resume),
      onStarted: (pid) => this.send({ $case: 'jobStarted', value: { jobId, epoch, pid } }),
      processGroups: this.reaper,
      killGraceMs: this.options.killGraceMs ?? DEFAULT_KILL_GRACE_MS,
      ...(this.options.pipeGraceMs !== undefined ? { pipeGraceMs: this.options.pipeGraceMs } : {}),
      ...(this.options.baseEnv ? { baseEnv: this.options.baseEnv } : {}),
      ...(this.options.batching ? { batching: this.options.batching } : {}),
    });
    this.jobs.set(jobId, execution);
    void execution.done.then((result) => {
      this.send({ $case: 'jobFinished', value: { jobId, epoch, ...result } });
      this.jobs.delete(jobId);
      if (this.jobs.size === 0) this.onIdle();
    });
  }

  private onIdle(): void {
    if (this.state === 'draining') this.closeGracefully();
    else if (this.state === 'lost') this.finalize(EXIT_CODES.connectionLost);
  }

  private beginDrain(): void {
    if (this.state !== 'connecting' && this.state !== 'ready') return;
    this.state = 'draining';
    if (this.jobs.size === 0) this.closeGracefully();
    else this.log(`draining: waiting for ${this.jobs.size} running job(s)`);
  }

  private cancelAll(): void {
    for (const job of this.jobs.values()) job.cancel();
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
    this.uninstallSignals();
    this.streamOpen = false;
    this.call?.cancel();
    this.client.close();
    this.releaseDrainWaiters();
    void this.reaper.close().then(() => this.resolveDone(code));
  }

  /** Writes now when registered on an open stream; otherwise buffers (bounded: false asks to pause). */
  private send(payload: Payload): boolean {
    if (this.state === 'closed') return true;
    if (this.streamOpen && this.registered && this.call && !this.call.writableEnded) return this.write(payload);
    if (payload.$case === 'heartbeat' || this.state === 'closing') return true;
    this.outbox.push(payload);
    return this.outbox.length < (this.options.maxBufferedMessages ?? DEFAULT_MAX_BUFFERED_MESSAGES);
  }

  private write(payload: Payload): boolean {
    if (payload.$case !== 'heartbeat') {
      this.recentlySent.push(payload);
      if (this.recentlySent.length > RESEND_ON_RECONNECT) this.recentlySent.shift();
    }
    return this.call!.write({ payload });
  }

  private sendHeartbeat(): void {
    this.send({ $case: 'heartbeat', value: { runningJobIds: [...this.jobs.keys()] } });
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
