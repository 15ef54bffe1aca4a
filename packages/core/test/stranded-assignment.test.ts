import { describe, expect, it } from 'vitest';
import { HodeiError } from '../src/domain/errors';
import type { Job } from '../src/domain/job';
import type { Worker } from '../src/domain/worker';
import type { WorkerGuard } from '../src/ports/store';
import { MemoryStore } from '../src/store/memory-store';
import { reportRun, startInProcessEngine, until } from './in-process-worker';

/**
 * The first worker write that records a claimed job fails for good (not a retried outage): the claim has committed.
 * With `atomic`, that write is `addRunningJobs`; without, the store lacks it and the engine uses `updateWorker`.
 */
class FailingWorkerUpdateStore extends MemoryStore {
  failures = 0;

  constructor(atomic: boolean) {
    super();
    if (!atomic) Object.defineProperty(this, 'addRunningJobs', { value: undefined });
  }

  private failOnce(): void {
    this.failures += 1;
    throw new HodeiError('INTERNAL', 'memory store: the worker write failed');
  }

  override async addRunningJobs(workerId: string, jobIds: readonly string[]): Promise<Worker | undefined> {
    if (this.failures === 0) this.failOnce();
    return super.addRunningJobs(workerId, jobIds);
  }

  override async updateWorker(id: string, guard: WorkerGuard, patch: Partial<Worker>): Promise<Worker | undefined> {
    if (this.failures === 0 && (patch.runningJobIds?.length ?? 0) > 0) this.failOnce();
    return super.updateWorker(id, guard, patch);
  }
}

describe('an assignment that could not be recorded on its worker', () => {
  it.each([
    ['one atomic addRunningJobs', true],
    ['a compare-and-set updateWorker (a store without addRunningJobs)', false],
  ])('is put back in the queue (its attempt not counted) and runs, instead of staying ASSIGNED forever: %s', async (_, atomic) => {
    const { controller, store } = await startInProcessEngine({
      store: new FailingWorkerUpdateStore(atomic),
      config: { pollIntervalMs: 100 },
      onRun: (run, engine) => void reportRun(engine, run),
    });
    expect(store.addRunningJobs === undefined).toBe(!atomic);
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

  it('ends CANCELLED, not back in the queue, when a cancel was requested before the sweep found it', async () => {
    const { controller, store } = await startInProcessEngine({
      store: new FailingWorkerUpdateStore(true),
      config: { pollIntervalMs: 100 },
      onRun: (run, engine) => void reportRun(engine, run),
    });
    try {
      const queued = await controller.queue({ name: 'stranded', command: 'true' });
      await until(async () => (store.failures === 1 && (await store.getJob(queued.id))?.state === 'ASSIGNED' ? true : undefined));
      // Its worker is connected: the cancel is recorded and sent (the worker does not know the job).
      expect(await controller.cancel(queued.id)).toMatchObject({ state: 'ASSIGNED', cancelRequestedAt: expect.any(Number) });
      const done = await until(async () => {
        const job = await store.getJob(queued.id);
        return job?.state !== 'ASSIGNED' ? job : undefined;
      }, 20_000);
      expect(done).toMatchObject<Partial<Job>>({ state: 'CANCELLED', attempt: 1, epoch: 1 });
      const [worker] = await store.listWorkers();
      expect(worker!.runningJobIds).toEqual([]);
    } finally {
      await controller.stop();
    }
  }, 30_000);
});
