import { describe, expect, it } from 'vitest';
import { HodeiError } from '../src/domain/errors';
import type { Job } from '../src/domain/job';
import type { Worker } from '../src/domain/worker';
import { resolveEngineConfig } from '../src/engine/engine-config';
import { JobController } from '../src/engine/job-controller';
import { systemClock } from '../src/ports/clock';
import { silentLogger } from '../src/ports/logger';
import type { WorkerGuard } from '../src/ports/store';
import { MemoryStore } from '../src/store/memory-store';
import { inProcessWorkerProvider, until } from './in-process-worker';

/** The first worker update that records a claimed job fails for good (not a retried outage): the claim has committed. */
class FailingWorkerUpdateStore extends MemoryStore {
  failures = 0;
  override async updateWorker(id: string, guard: WorkerGuard, patch: Partial<Worker>): Promise<Worker | undefined> {
    if (this.failures === 0 && (patch.runningJobIds?.length ?? 0) > 0) {
      this.failures += 1;
      throw new HodeiError('INTERNAL', 'memory store: updateWorker failed');
    }
    return super.updateWorker(id, guard, patch);
  }
}

describe('an assignment that could not be recorded on its worker', () => {
  it('is put back in the queue (its attempt not counted) and runs, instead of staying ASSIGNED forever', async () => {
    const store = new FailingWorkerUpdateStore();
    let controller!: JobController;
    controller = new JobController({
      store,
      providers: [
        inProcessWorkerProvider(
          () => controller,
          ({ workerId, job }) =>
            void (async () => {
              await controller.jobStarted(workerId, job.id, job.epoch);
              await controller.jobFinished(workerId, job.id, job.epoch, { outcome: 'EXITED', exitCode: 0, signal: '', durationMs: 1, errorMessage: '' });
            })(),
        ),
      ],
      clock: systemClock,
      logger: silentLogger,
      config: resolveEngineConfig({ pollIntervalMs: 100 }),
      serverAddress: () => '127.0.0.1:1',
    });
    await controller.start();
    try {
      const queued = await controller.queue({ name: 'stranded', command: 'true' });
      const done = await until(async () => {
        const job = await store.getJob(queued.id);
        return job?.state === 'SUCCEEDED' ? job : undefined;
      }, 20_000);
      expect(store.failures).toBe(1);
      expect(done).toMatchObject<Partial<Job>>({ attempt: 1, epoch: 2 });
      const events = (await store.listAudit(queued.id)).map((event) => event.eventType);
      expect(events).toEqual(['job.queued', 'job.assigned', 'job.requeued', 'job.assigned', 'job.started', 'job.finished']);
      const [worker] = await store.listWorkers();
      expect(worker!.runningJobIds).toEqual([]);
    } finally {
      await controller.stop();
    }
  }, 30_000);
});
