import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import { createSecretFinder, createSecretMasker, JobOutcome, LogStream, longestMaskedSecret, type JobSpec, type LogLines } from '@hodei/core/protocol';
import { checkWorkingDir, describeSpawnError, jobEnv, planLaunch, writeScript } from './job-launch';
import { LogBatcher, type LogBatcherOptions, type LogSink } from './log-batcher';
import { LineSplitter, type SplitterSecrets } from './line-splitter';
import type { ProcessGroupTracker } from './orphan-reaper';
import { formatSeconds, signalGroup } from './process-group';

/** Between SIGTERM and SIGKILL when a job times out or is cancelled without a grace of its own. */
export const DEFAULT_KILL_GRACE_MS = 5_000;
/** How long the pipes may stay open after the job's main process exited (a grandchild holding them). */
export const DEFAULT_PIPE_GRACE_MS = 1_000;
/** Timeout of jobs whose spec says 0. */
export const DEFAULT_JOB_TIMEOUT_MS = 60 * 60 * 1000;
/** After SIGKILL, how long to wait for the process before reporting that it could not be killed. */
const KILL_WAIT_MS = 5_000;
const MAX_TIMER_MS = 2 ** 31 - 1;

/** How one job runs. */
export interface JobExecutionOptions {
  /** The job's id, carried on every log batch. */
  jobId: string;
  /** What to run (the wire form of the job spec). */
  spec: JobSpec;
  /** Receives the job's log batches; returns false under back-pressure. */
  sink: LogSink;
  /** Called with a callback to run once the sink can take more (e.g. the stream's 'drain'). */
  whenWritable?: (resume: () => void) => void;
  /** Called once the process is running. */
  onStarted?: (pid: number) => void;
  /** Told of the job's process group when it starts and ends (`OrphanReaper` kills it if the worker dies). */
  processGroups?: ProcessGroupTracker;
  /** The worker's environment the job's is derived from; default `process.env`. */
  baseEnv?: NodeJS.ProcessEnv;
  /** Between SIGTERM and SIGKILL on timeout or cancel, in milliseconds; default {@link DEFAULT_KILL_GRACE_MS}. */
  killGraceMs?: number;
  /** How long the output pipes may stay open after the main process exited, in milliseconds; default {@link DEFAULT_PIPE_GRACE_MS}. */
  pipeGraceMs?: number;
  /** Timeout when `spec.timeoutMs` is 0, in milliseconds; default {@link DEFAULT_JOB_TIMEOUT_MS}. */
  defaultTimeoutMs?: number;
  /** How output is batched and capped (see {@link LogBatcherOptions}). */
  batching?: LogBatcherOptions;
  /** Longer lines are split into pieces of at most this many characters; default {@link DEFAULT_MAX_LINE_LENGTH}. */
  maxLineLength?: number;
  /**
   * The last batch of lines goes in the result (`JobResult.lines`) instead of to the sink, for the caller to
   * send the run's end in one message; default false.
   */
  lastLinesWithResult?: boolean;
}

/** How a job ended. */
export interface JobResult {
  /** Exited (any code), timed out, cancelled, or failed to start. */
  outcome: JobOutcome;
  /** The exit code; -1 when the process was ended by a signal or never started. */
  exitCode: number;
  /** The signal that ended the process, or ''. */
  signal: string;
  /** From the start of the execution to its end (process exited, pipes closed), in milliseconds. */
  durationMs: number;
  /** Why it failed to start, or that its process group could not be killed; '' otherwise. */
  errorMessage: string;
  /** With `lastLinesWithResult`: the run's last lines, not given to the sink (undefined when none were left). */
  lines?: LogLines;
}

/**
 * One running job: a `/bin/bash -c` command or a script, in its own process group, its output split into
 * lines and batched to the sink. Complete once the process exited and its pipes closed (or were closed
 * for it, a bounded time after the exit). Timeout and cancel send SIGTERM to the group, then SIGKILL.
 */
export class JobExecution {
  /** The job's id. */
  readonly jobId: string;
  /** The job's process id (and process group id) once spawned. */
  pid: number | undefined;
  /** Settles, never rejects, when the job is over and its last log batch was handed to the sink. */
  readonly done: Promise<JobResult>;

  private readonly batcher: LogBatcher;
  private readonly killGraceMs: number;
  private readonly pipeGraceMs: number;
  private readonly startedAt = performance.now();
  private child: ChildProcess | undefined;
  private outcome: JobOutcome | undefined;
  /** `cancel()` was called: its log line is written once. */
  private cancelled = false;
  private errorMessage = '';
  private exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private openPipes = 0;
  private terminating = false;
  private finished = false;
  private killAt = Infinity;
  private readonly timers = new Set<NodeJS.Timeout>();
  /** The job's secrets, for the splitters of its pipes (see SplitterSecrets); none when it has none. */
  private readonly splitterSecrets: SplitterSecrets | undefined;
  private killTimer: NodeJS.Timeout | undefined;
  private resolve!: (result: JobResult) => void;

  constructor(private readonly options: JobExecutionOptions) {
    this.jobId = options.jobId;
    this.killGraceMs = options.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
    this.pipeGraceMs = options.pipeGraceMs ?? DEFAULT_PIPE_GRACE_MS;
    const maskSecrets = createSecretMasker(options.spec.env, options.spec.secretEnv);
    const longestSecret = longestMaskedSecret(options.spec.env, options.spec.secretEnv);
    // Long lines are cut by the splitter: never inside a secret (half of it would otherwise go out in clear).
    this.splitterSecrets =
      longestSecret > 0
        ? { mask: maskSecrets, find: createSecretFinder(options.spec.env, options.spec.secretEnv), longest: longestSecret }
        : undefined;
    this.batcher = new LogBatcher(options.sink, options.batching, () => this.pausePipes(), maskSecrets);
    this.done = new Promise<JobResult>((resolve) => (this.resolve = resolve));
    void this.launch().catch((error: unknown) => this.failToStart(String(error)));
  }

  /**
   * Stops the job: SIGTERM to its group, then SIGKILL after `graceMs` (default the kill grace); it ends CANCELLED.
   * Once the command itself has exited, its result stands and only what it left running is killed.
   */
  cancel(graceMs?: number): void {
    if (this.finished) return;
    if (this.exit) {
      // The command has exited (a background process still holds its output open): its result stands, an exit 0
      // stays a success; the cancel only stops what it left running.
      this.terminate(0);
      return;
    }
    // A second cancel (the server may resend CancelJob) adds no second line; its stop is idempotent.
    if (!this.cancelled) this.batcher.add(LogStream.LOG_STREAM_SYSTEM, 'Job cancelled');
    this.cancelled = true;
    this.outcome ??= JobOutcome.JOB_OUTCOME_CANCELLED;
    this.terminate(graceMs !== undefined && graceMs > 0 ? graceMs : this.killGraceMs);
  }

  /** Sends the lines waiting for their batch's flush delay (or held, like the header) to the sink now. */
  flushLogs(): void {
    if (!this.finished) this.batcher.flush();
  }

  /** Kills the job's group at once (SIGKILL), e.g. when the server is gone. */
  kill(): void {
    if (this.finished) return;
    this.outcome ??= JobOutcome.JOB_OUTCOME_CANCELLED;
    this.terminate(0);
  }

  private async launch(): Promise<void> {
    const { spec, jobId } = this.options;
    const plan = planLaunch(spec);
    // The header waits for the job's first output, a flushLogs() or the end: a short job's run is then one report.
    for (const line of plan.header) this.batcher.add(LogStream.LOG_STREAM_SYSTEM, line, false);
    if (plan.invalid) return this.failToStart(plan.invalid);
    try {
      await checkWorkingDir(spec.workingDir);
    } catch (error) {
      return this.failToStart((error as Error).message);
    }
    let cleanup = async () => undefined as void;
    const args = [...plan.args];
    if (plan.scriptContent !== undefined) {
      const script = await writeScript(plan.scriptContent);
      args.push(script.path);
      cleanup = script.cleanup;
    }
    void this.done.then(() => cleanup().catch(() => undefined));
    if (this.outcome !== undefined) return this.finish(); // cancelled before it started

    const child = spawn(plan.program, args, {
      cwd: spec.workingDir || undefined,
      env: jobEnv(this.options.baseEnv ?? process.env, spec, jobId),
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    child.on('error', (error: NodeJS.ErrnoException) => {
      if (child.pid === undefined) this.failToStart(describeSpawnError(error, plan.program));
    });
    if (child.pid === undefined) return; // 'error' follows
    this.pid = child.pid;
    this.openPipes = 2;
    this.readPipe(child.stdout!, LogStream.LOG_STREAM_STDOUT);
    this.readPipe(child.stderr!, LogStream.LOG_STREAM_STDERR);
    child.once('exit', (code, signal) => this.onExit(code, signal));
    const timeoutMs = spec.timeoutMs > 0 ? spec.timeoutMs : (this.options.defaultTimeoutMs ?? DEFAULT_JOB_TIMEOUT_MS);
    this.after(Math.min(timeoutMs, MAX_TIMER_MS), () => this.onTimeout(timeoutMs));
    this.options.onStarted?.(child.pid);
    this.options.processGroups?.track(child.pid);
  }

  private readPipe(pipe: Readable, stream: LogStream): void {
    const splitter = new LineSplitter((text) => this.batcher.add(stream, text), this.options.maxLineLength, this.splitterSecrets);
    pipe.on('data', (chunk: Buffer) => splitter.push(chunk));
    pipe.on('error', () => undefined); // 'close' follows
    pipe.once('close', () => {
      splitter.end();
      this.openPipes -= 1;
      this.maybeFinish();
    });
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    this.exit = { code, signal };
    if (this.openPipes > 0 && !this.terminating) this.after(this.pipeGraceMs, () => this.closePipes());
    this.maybeFinish();
  }

  private onTimeout(timeoutMs: number): void {
    if (this.finished || this.exit) return;
    this.outcome ??= JobOutcome.JOB_OUTCOME_TIMED_OUT;
    this.batcher.add(LogStream.LOG_STREAM_STDERR, `Command timed out after ${formatSeconds(timeoutMs)} seconds`);
    this.terminate(this.killGraceMs);
  }

  private terminate(graceMs: number): void {
    if (this.pid === undefined) return; // not spawned yet: launch() sees the outcome and stops
    const killAt = performance.now() + graceMs;
    if (killAt >= this.killAt) return; // a kill is already due sooner
    this.killAt = killAt;
    if (!this.terminating && graceMs > 0) signalGroup(this.pid, 'SIGTERM');
    this.terminating = true;
    if (this.killTimer) clearTimeout(this.killTimer);
    if (graceMs <= 0) return this.forceKill();
    this.killTimer = this.after(graceMs, () => this.forceKill());
  }

  private forceKill(): void {
    signalGroup(this.pid, 'SIGKILL');
    if (this.exit) this.after(this.pipeGraceMs, () => this.closePipes());
    this.after(KILL_WAIT_MS, () => {
      this.errorMessage ||= `could not kill process group ${this.pid} within ${formatSeconds(KILL_WAIT_MS)} s`;
      this.destroyPipes();
      this.finish();
    });
  }

  /** The main process exited but something still holds its pipes: kill the group and stop reading. */
  private closePipes(): void {
    if (this.finished || this.openPipes === 0) return;
    if (this.batcher.paused) {
      this.after(this.pipeGraceMs, () => this.closePipes()); // not stuck: waiting for the transport
      return;
    }
    signalGroup(this.pid, 'SIGKILL');
    this.destroyPipes();
  }

  private destroyPipes(): void {
    this.child?.stdout?.destroy();
    this.child?.stderr?.destroy();
  }

  private pausePipes(): void {
    if (!this.options.whenWritable) return this.batcher.resume();
    this.child?.stdout?.pause();
    this.child?.stderr?.pause();
    this.options.whenWritable(() => {
      this.batcher.resume();
      this.child?.stdout?.resume();
      this.child?.stderr?.resume();
    });
  }

  private maybeFinish(): void {
    if (this.exit && this.openPipes === 0) this.finish();
  }

  private failToStart(message: string): void {
    if (this.finished) return;
    this.outcome = JobOutcome.JOB_OUTCOME_FAILED_TO_START;
    this.errorMessage = message;
    this.batcher.add(LogStream.LOG_STREAM_STDERR, `hodei: failed to start the job: ${message}`);
    this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    signalGroup(this.pid, 'SIGKILL'); // nothing of the job outlives it (background processes included)
    if (this.pid !== undefined) this.options.processGroups?.untrack(this.pid);
    const lines = this.options.lastLinesWithResult ? this.batcher.end() : (this.batcher.close(), undefined);
    const { code = null, signal = null } = this.exit ?? {};
    this.resolve({
      outcome: this.outcome ?? JobOutcome.JOB_OUTCOME_EXITED,
      exitCode: code ?? -1,
      signal: signal ?? '',
      durationMs: Math.round(performance.now() - this.startedAt),
      errorMessage: this.errorMessage,
      ...(lines ? { lines } : {}),
    });
  }

  private after(ms: number, fn: () => void): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
    return timer;
  }
}

/** Starts a job; see {@link JobExecution}. */
export function runJob(options: JobExecutionOptions): JobExecution {
  return new JobExecution(options);
}
