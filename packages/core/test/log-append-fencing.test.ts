import { describe, expect, it } from 'vitest';
import type { Job } from '../src/domain/job';
import { resolveEngineConfig } from '../src/engine/engine-config';
import { JobController } from '../src/engine/job-controller';
import type { WorkerChannel } from '../src/engine/worker-channel';
import { systemClock } from '../src/ports/clock';
import { silentLogger } from '../src/ports/logger';
import type { CreateWorkerRequest, Provider } from '../src/ports/provider';
import type { NewLogLine } from '../src/ports/store';
import { MemoryStore } from '../src/store/memory-store';

/** A store whose next count read (`appendLogs(jobId, [])`) waits until `release()`: a slow store or a retry. */
class GatedStore extends MemoryStore {
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;
  gatedReads = 0;
  arm(): void {
    this.gate = new Promise((resolve) => (this.open = resolve));
  }
  release(): void {
    this.open?.();
  }
  override async appendLogs(jobId: string, lines: readonly NewLogLine[]): Promise<number> {
    const gate = this.gate;
    if (gate && lines.length === 0) {
      this.gate = undefined;
      this.gatedReads += 1;
      await gate;
    }
    return super.appendLogs(jobId, lines);
  }
}

/** One in-process worker of capacity 1 that records the runs it is sent and does nothing by itself. */
function recordingProvider(controller: () => JobController, runs: { workerId: string; job: Job; firstLogSeq: number }[]): Provider {
  return {
    specificationVersion: 'v1',
    name: 'inproc',
    capabilities: { maxWorkers: 1, workerCapacity: 1, labels: {} },
    async createWorker({ workerId, otp }: CreateWorkerRequest) {
      const channel: WorkerChannel = {
        runJob: (job: Job, firstLogSeq: number) => void runs.push({ workerId, job, firstLogSeq }),
        cancelJob() {},
        drain() {},
        close() {},
      };
      setImmediate(() => void controller().registerWorker({ workerId, otp, capacity: 1 }, channel).catch(() => undefined));
    },
    async destroyWorker() {},
    onWorkerExit: () => () => undefined,
    async close() {},
  };
}

async function until<T>(probe: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const line = (text: string): NewLogLine => ({ stream: 'stdout', text, timestamp: Date.now() });

describe('a log batch that waited while its job was re-queued', () => {
  it('is refused when it reaches the store, and the next attempt keeps its first lines', async () => {
    const store = new GatedStore();
    const runs: { workerId: string; job: Job; firstLogSeq: number }[] = [];
    const controller: JobController = new JobController({
      store,
      providers: [recordingProvider(() => controller, runs)],
      clock: systemClock,
      logger: silentLogger,
      config: resolveEngineConfig({ retryBackoffMs: 10 }),
      serverAddress: () => '127.0.0.1:1',
    });
    await controller.start();
    try {
      const queued = await controller.queue({ name: 'j', command: 'flaky', maxAttempts: 2, retryOnExitCodes: [3] });
      const first = await until(() => runs[0]);
      await controller.jobStarted(first.workerId, queued.id, first.job.epoch);
      // The first run's batch is accepted, then waits on the store (its count read is slow)...
      store.arm();
      const late = controller.appendLogs(first.workerId, queued.id, first.job.epoch, [line('old attempt')], 1);
      await until(() => (store.gatedReads > 0 ? true : undefined));
      // ...while the run ends with a retried exit code and the job is assigned again.
      await controller.jobFinished(first.workerId, queued.id, first.job.epoch, { outcome: 'EXITED', exitCode: 3, signal: '', durationMs: 1, errorMessage: '' });
      const second = await until(() => runs[1]);
      expect(second.job.attempt).toBe(2);
      store.release();
      await late;
      const stored = await controller.appendLogs(second.workerId, queued.id, second.job.epoch, [line('new attempt')], second.firstLogSeq);
      expect(stored).toBe(second.firstLogSeq);
      expect((await store.readLogs(queued.id, 1, 100)).map((l) => `${l.seq}:${l.text}`)).toEqual([`${second.firstLogSeq}:new attempt`]);
    } finally {
      await controller.stop();
    }
  }, 20_000);
});
