import { describe, expect, it } from 'vitest';
import { HodeiError } from '../src/domain/errors';
import type { Job } from '../src/domain/job';
import { resolveEngineConfig } from '../src/engine/engine-config';
import { JobController } from '../src/engine/job-controller';
import type { WorkerChannel } from '../src/engine/worker-channel';
import { systemClock } from '../src/ports/clock';
import { silentLogger } from '../src/ports/logger';
import type { CreateWorkerRequest, Provider } from '../src/ports/provider';
import type { AuditEvent, JobGuard } from '../src/ports/store';
import { MemoryStore } from '../src/store/memory-store';

/** The first write of a final state commits, then "loses its connection" (throws UNAVAILABLE): an in-doubt commit. */
class InDoubtStore extends MemoryStore {
  inDoubt = 0;
  override async updateJob(id: string, guard: JobGuard, patch: Partial<Job>, audit?: AuditEvent): Promise<Job | undefined> {
    const updated = await super.updateJob(id, guard, patch, audit);
    if (updated && patch.state === 'SUCCEEDED' && this.inDoubt === 0) {
      this.inDoubt += 1;
      throw new HodeiError('UNAVAILABLE', 'memory store: updateJob failed: connection terminated after commit');
    }
    return updated;
  }
}

/** One in-process worker of capacity 1 that runs each job at once and reports success. */
function oneWorkerProvider(controller: () => JobController): Provider {
  return {
    specificationVersion: 'v1',
    name: 'inproc',
    capabilities: { maxWorkers: 1, workerCapacity: 1, labels: {} },
    async createWorker({ workerId, otp }: CreateWorkerRequest) {
      const channel: WorkerChannel = {
        runJob(job: Job) {
          void (async () => {
            await controller().jobStarted(workerId, job.id, job.epoch);
            await controller().jobFinished(workerId, job.id, job.epoch, { outcome: 'EXITED', exitCode: 0, signal: '', durationMs: 1, errorMessage: '' });
          })();
        },
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

async function until<T>(probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('a result whose store write is in doubt (committed, then the connection broke)', () => {
  it('is recognised on retry: recorded once, and the worker is free for the next job', async () => {
    const store = new InDoubtStore();
    let controller!: JobController;
    controller = new JobController({
      store,
      providers: [oneWorkerProvider(() => controller)],
      clock: systemClock,
      logger: silentLogger,
      config: resolveEngineConfig({}),
      serverAddress: () => '127.0.0.1:1',
    });
    await controller.start();
    try {
      const first = await controller.queue({ name: 'first', command: 'true' });
      const second = await controller.queue({ name: 'second', command: 'true' });
      const done = await until(async () => {
        const jobs = await Promise.all([store.getJob(first.id), store.getJob(second.id)]);
        return jobs.every((job) => job?.state === 'SUCCEEDED') ? (jobs as Job[]) : undefined;
      });
      expect(store.inDoubt).toBe(1);
      // One worker of capacity 1 ran both: its slot was freed after the in-doubt write.
      expect(done[0]!.workerId).toBe(done[1]!.workerId);
      const finished = (await store.listAudit(first.id)).filter((event) => event.eventType === 'job.finished');
      expect(finished).toHaveLength(1);
    } finally {
      await controller.stop();
    }
  }, 20_000);
});
