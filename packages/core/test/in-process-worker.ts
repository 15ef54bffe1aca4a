import type { Job } from '../src/domain/job';
import { resolveEngineConfig, type EngineConfig } from '../src/engine/engine-config';
import { JobController } from '../src/engine/job-controller';
import type { WorkerChannel } from '../src/engine/worker-channel';
import { systemClock, type Clock } from '../src/ports/clock';
import { silentLogger } from '../src/ports/logger';
import type { EngineObserver } from '../src/ports/observer';
import type { CreateWorkerRequest, Provider } from '../src/ports/provider';
import type { Store } from '../src/ports/store';
import { MemoryStore } from '../src/store/memory-store';

/** What an in-process worker was asked to run. */
export interface InProcessRun {
  workerId: string;
  job: Job;
  firstLogSeq: number;
}

/**
 * A provider of one in-process worker of capacity `capacity` (default 1), registered with `controller()` without
 * gRPC; each run it is sent goes to `onRun` (which may report back to the controller, or hold the run for the test).
 */
export function inProcessWorkerProvider(controller: () => JobController, onRun: (run: InProcessRun) => void, capacity = 1): Provider {
  return {
    specificationVersion: 'v1',
    name: 'inproc',
    capabilities: { maxWorkers: 1, workerCapacity: capacity, labels: {} },
    async createWorker({ workerId, otp }: CreateWorkerRequest) {
      const channel: WorkerChannel = {
        runJob: (job: Job, firstLogSeq: number) => onRun({ workerId, job, firstLogSeq }),
        cancelJob() {},
        drain() {},
        close() {},
      };
      setImmediate(() => void controller().registerWorker({ workerId, otp, capacity }, channel).catch(() => undefined));
    },
    async destroyWorker() {},
    onWorkerExit: () => () => undefined,
    async close() {},
  };
}

/** Polls `probe` every 10 ms until it returns a value, or throws after `timeoutMs`. */
export async function until<T>(probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** What {@link startInProcessEngine} builds the engine with; all optional but the store. */
export interface InProcessEngineOptions<S extends Store> {
  store: S;
  /** Engine timings (a short retry backoff by default, so tests need not wait). */
  config?: Partial<EngineConfig>;
  clock?: Clock;
  observer?: EngineObserver;
  /** Slots of the one in-process worker; default 1. */
  capacity?: number;
  /** What the worker does with each run it is sent, besides recording it in `runs`; default nothing (the test reports). */
  onRun?: (run: InProcessRun, controller: JobController) => void;
}

/** A started JobController on `store` with one in-process worker, and the runs that worker was sent. */
export async function startInProcessEngine<S extends Store>(
  options: InProcessEngineOptions<S>,
): Promise<{ controller: JobController; store: S; runs: InProcessRun[] }> {
  const runs: InProcessRun[] = [];
  const controller: JobController = new JobController({
    store: options.store,
    providers: [
      inProcessWorkerProvider(
        () => controller,
        (run) => {
          runs.push(run);
          options.onRun?.(run, controller);
        },
        options.capacity,
      ),
    ],
    clock: options.clock ?? systemClock,
    logger: silentLogger,
    config: resolveEngineConfig({ retryBackoffMs: 10, ...options.config }),
    serverAddress: () => '127.0.0.1:1',
    ...(options.observer ? { observer: options.observer } : {}),
  });
  await controller.start();
  return { controller, store: options.store, runs };
}

/** The report of a run that exited with `exitCode` after `durationMs`. */
export function exited(exitCode: number, durationMs = 1) {
  return { outcome: 'EXITED' as const, exitCode, signal: '', durationMs, errorMessage: '' };
}

/** Reports `run` as started, then as exited with `exitCode`, as a worker would for a job that ran. */
export async function reportRun(controller: JobController, run: InProcessRun, exitCode = 0): Promise<void> {
  await controller.jobStarted(run.workerId, run.job.id, run.job.epoch);
  await controller.jobFinished(run.workerId, run.job.id, run.job.epoch, exited(exitCode));
}

/** A MemoryStore that counts the reads of a job (`getJob`), for tests of what an operation costs. */
export class JobReadCountingStore extends MemoryStore {
  jobReads = 0;
  override getJob(id: string): Promise<Job | undefined> {
    this.jobReads += 1;
    return super.getJob(id);
  }
}

/** A MemoryStore that records the `limit` of every `queuedJobs` call (what a scheduling pass reads). */
export class QueueReadsRecorder extends MemoryStore {
  readonly limits: number[] = [];

  override async queuedJobs(limit: number): Promise<Job[]> {
    this.limits.push(limit);
    return super.queuedJobs(limit);
  }
}

/** A job write a {@link WritesHeld} may hold: its method, its job, and its patch (the updates'). */
export interface HeldWrite {
  method: 'compareAndSetJob' | 'updateJob' | 'appendLogBatch';
  jobId: string;
  patch?: Partial<Job>;
}

/**
 * A MemoryStore whose job writes that `hold`'s test matches wait until `release()` (a store write that is slow,
 * a result being recorded); `held` counts the writes that waited.
 */
export class WritesHeld extends MemoryStore {
  held = 0;
  private holds: ((write: HeldWrite) => boolean) | undefined;
  private readonly waiting: (() => void)[] = [];
  hold(test: (write: HeldWrite) => boolean): void {
    this.holds = test;
  }
  release(): void {
    this.holds = undefined;
    for (const resume of this.waiting.splice(0)) resume();
  }
  private async wait(write: HeldWrite): Promise<void> {
    if (!this.holds?.(write)) return;
    this.held += 1;
    await new Promise<void>((resume) => this.waiting.push(resume));
  }
  override async compareAndSetJob(...args: Parameters<MemoryStore['compareAndSetJob']>): ReturnType<MemoryStore['compareAndSetJob']> {
    await this.wait({ method: 'compareAndSetJob', jobId: args[0], patch: args[2] });
    return super.compareAndSetJob(...args);
  }
  override async updateJob(...args: Parameters<MemoryStore['updateJob']>): ReturnType<MemoryStore['updateJob']> {
    await this.wait({ method: 'updateJob', jobId: args[0], patch: args[2] });
    return super.updateJob(...args);
  }
  override async appendLogBatch(...args: Parameters<MemoryStore['appendLogBatch']>): ReturnType<MemoryStore['appendLogBatch']> {
    await this.wait({ method: 'appendLogBatch', jobId: args[0] });
    return super.appendLogBatch(...args);
  }
}

/** A test for {@link WritesHeld.hold}: the writes of a job's success. */
export const successWrites = (write: HeldWrite): boolean => write.patch?.state === 'SUCCEEDED';
