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
import { installShutdownSignals } from './shutdown-signals';

/** Exit codes of the worker process. */
export const EXIT_CODES = { ok: 0, connectionLost: 1, invalidConfig: 2, refused: 3 } as const;

/** Heartbeat period used when the server's Registered says 0. */
const DEFAULT_HEARTBEAT_MS = 5_000;

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
  batching?: LogBatcherOptions;
  /** Diagnostic lines; default stderr, prefixed with the worker id. */
  log?: (line: string) => void;
  /** Extra gRPC channel options. */
  channelOptions?: Partial<ClientOptions>;
}

/** A running worker. */
export interface WorkerHandle {
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
  private call: ClientDuplexStream<WorkerMessage, ServerMessage> | undefined;
  private streamOpen = false;
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
    this.client = new WorkerServiceClient(config.serverAddress, credentials.createInsecure(), options.channelOptions);
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

  /** Opens the stream and registers. Reconnection (with the session token) will start here again. */
  private connect(): void {
    const call = this.client.connect();
    this.call = call;
    this.streamOpen = true;
    call.on('data', (message: ServerMessage) => this.onMessage(message));
    call.on('error', (error: Error) => this.onStreamEnd(`the stream failed: ${error.message}`));
    call.on('end', () => this.onStreamEnd('the server closed the stream'));
    call.on('drain', () => this.releaseDrainWaiters());
    const { workerId, otpToken, capacity, labels } = this.config;
    const version = this.options.version ?? packageVersion;
    this.send({ $case: 'register', value: { workerId, otp: otpToken, sessionToken: '', capacity, labels, version } });
  }

  private onMessage(message: ServerMessage): void {
    const payload = message.payload;
    if (!payload || this.state === 'closed' || this.state === 'lost') return;
    switch (payload.$case) {
      case 'registered': {
        if (this.state !== 'connecting') return;
        this.state = 'ready';
        const interval = payload.value.heartbeatIntervalMs > 0 ? payload.value.heartbeatIntervalMs : DEFAULT_HEARTBEAT_MS;
        this.heartbeat = setInterval(() => this.sendHeartbeat(), Math.min(interval, 2 ** 31 - 1));
        return;
      }
      case 'refused':
        this.log(`registration refused (${payload.value.code}): ${payload.value.message}`);
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
    if (this.state === 'closing') return this.finalize(EXIT_CODES.ok);
    if (this.state === 'closed') return;
    // Without reconnection (yet), a lost stream ends the worker: its jobs would be orphaned otherwise.
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
    this.uninstallSignals();
    this.streamOpen = false;
    this.call?.cancel();
    this.client.close();
    this.releaseDrainWaiters();
    this.resolveDone(code);
  }

  private send(payload: Payload): boolean {
    if (!this.streamOpen || !this.call || this.call.writableEnded) return true;
    return this.call.write({ payload });
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
 */
export function startWorker(config: WorkerConfig, options: StartWorkerOptions = {}): WorkerHandle {
  const agent = new WorkerAgent(config, options);
  agent.start();
  return agent;
}
