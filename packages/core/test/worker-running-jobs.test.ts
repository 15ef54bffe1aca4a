import { describe, expect, it } from 'vitest';
import type { Job } from '../src/domain/job';
import type { Worker } from '../src/domain/worker';
import type { WorkerGuard } from '../src/ports/store';
import { MemoryStore } from '../src/store/memory-store';
import { reportRun, startInProcessEngine, until } from './in-process-worker';

/** Counts the store calls that read or write a worker's record; with `atomic` false it lacks addRunningJobs and removeRunningJobs. */
class WorkerCallCountingStore extends MemoryStore {
  readonly calls = { getWorker: 0, updateWorker: 0, addRunningJobs: 0, removeRunningJobs: 0 };

  constructor(atomic: boolean) {
    super();
    if (!atomic) {
      Object.defineProperty(this, 'addRunningJobs', { value: undefined });
      Object.defineProperty(this, 'removeRunningJobs', { value: undefined });
    }
  }

  reset(): void {
    for (const key of Object.keys(this.calls) as (keyof typeof this.calls)[]) this.calls[key] = 0;
  }

  override async getWorker(id: string): Promise<Worker | undefined> {
    this.calls.getWorker += 1;
    return super.getWorker(id);
  }

  override async updateWorker(id: string, guard: WorkerGuard, patch: Partial<Worker>): Promise<Worker | undefined> {
    this.calls.updateWorker += 1;
    return super.updateWorker(id, guard, patch);
  }

  override async addRunningJobs(workerId: string, jobIds: readonly string[]): Promise<Worker | undefined> {
    this.calls.addRunningJobs += 1;
    return super.addRunningJobs(workerId, jobIds);
  }

  override async removeRunningJobs(workerId: string, jobIds: readonly string[], now: number): Promise<Worker | undefined> {
    this.calls.removeRunningJobs += 1;
    return super.removeRunningJobs(workerId, jobIds, now);
  }
}

/** Runs `count` jobs after a warm-up; the store calls made for them, and the worker once they are done. */
async function runJobs(
  atomic: boolean,
  count: number,
): Promise<{ store: WorkerCallCountingStore; calls: WorkerCallCountingStore['calls']; jobs: Job[]; worker: Worker }> {
  const { controller, store } = await startInProcessEngine({
    store: new WorkerCallCountingStore(atomic),
    capacity: 2,
    config: { pollIntervalMs: 100 },
    onRun: (run, engine) => void setTimeout(() => void reportRun(engine, run), 5),
  });
  try {
    const succeeded = (id: string) =>
      until(async () => {
        const job = await store.getJob(id);
        return job?.state === 'SUCCEEDED' ? job : undefined;
      }, 20_000);
    const warm = await controller.queue({ name: 'warm', command: 'true' });
    await succeeded(warm.id);
    store.reset();
    const queued = await Promise.all(Array.from({ length: count }, (_, index) => controller.queue({ name: `job-${index}`, command: 'true' })));
    const jobs = await Promise.all(queued.map((job) => succeeded(job.id)));
    // The last slot is freed after the job's end is stored.
    const worker = await until(async () => {
      const [current] = await store.listWorkers();
      return current!.runningJobIds.length === 0 ? current : undefined;
    });
    return { store, calls: { ...store.calls }, jobs, worker };
  } finally {
    await controller.stop();
  }
}

describe("the engine's writes of a worker's running jobs", () => {
  it('records claims and frees slots with one atomic store call each, reading no worker record per job', async () => {
    const { calls, jobs, worker } = await runJobs(true, 10);
    expect(calls.removeRunningJobs).toBe(jobs.length);
    expect(calls.addRunningJobs).toBeGreaterThan(0);
    expect(calls.addRunningJobs).toBeLessThanOrEqual(jobs.length);
    expect(calls.getWorker).toBe(0);
    expect(calls.updateWorker).toBe(0);
    expect(worker).toMatchObject({ state: 'READY', runningJobIds: [], idleSince: expect.any(Number) });
  }, 30_000);

  it('reads and compare-and-sets the worker record on a store without addRunningJobs and removeRunningJobs', async () => {
    const { store, calls, jobs, worker } = await runJobs(false, 10);
    expect(store.addRunningJobs).toBeUndefined();
    expect(store.removeRunningJobs).toBeUndefined();
    expect(calls.getWorker).toBeGreaterThanOrEqual(jobs.length);
    expect(calls.updateWorker).toBeGreaterThanOrEqual(jobs.length);
    expect(worker).toMatchObject({ state: 'READY', runningJobIds: [], idleSince: expect.any(Number) });
  }, 30_000);
});
