import { afterEach, describe, expect, it } from 'vitest';
import type { Job } from '../src/domain/job';
import type { Worker, WorkerState } from '../src/domain/worker';
import type { WorkersAndQueue } from '../src/ports/store';
import type { JobController } from '../src/engine/job-controller';
import { systemClock, type Clock } from '../src/ports/clock';
import { MemoryStore } from '../src/store/memory-store';
import { QueueReadsRecorder, reportRun, startInProcessEngine, until, type InProcessRun } from './in-process-worker';

let controller: JobController | undefined;

afterEach(async () => {
  await controller?.stop();
  controller = undefined;
});

/** An engine on `store` with one in-process worker of `capacity` slots that runs every job it is sent, warmed up. */
async function engine(store: MemoryStore, capacity = 1, clock: Clock = systemClock): Promise<{ controller: JobController; runs: InProcessRun[] }> {
  const started = await startInProcessEngine({
    store,
    capacity,
    clock,
    config: { pollIntervalMs: 100 },
    // Reports come a little later, as from a real worker: the job is still ASSIGNED for the rest of the pass.
    onRun: (run, current) => void setTimeout(() => void reportRun(current, run), 20),
  });
  controller = started.controller;
  const warm = await started.controller.queue({ name: 'warm', command: 'true' });
  await succeeded(store, warm.id);
  return started;
}

async function succeeded(store: MemoryStore, id: string): Promise<Job> {
  return until(async () => {
    const job = await store.getJob(id);
    return job?.state === 'SUCCEEDED' ? job : undefined;
  }, 20_000);
}

function queuedJob(name: string, createdAt: number, extra: Partial<Job> = {}): Job {
  const spec = { name, command: 'true', args: [], env: {}, secretEnv: [], timeoutMs: 60_000, labels: {}, maxAttempts: 1, priority: 0 };
  return { id: `job_${name}`, spec, state: 'QUEUED', attempt: 1, epoch: 0, createdAt, ...extra };
}

describe('the engine assigning through Store.claimJobs', () => {
  it('sends each job of a pass once, when the pass gives one worker jobs on both sides of a job that waits', async () => {
    const store = new MemoryStore();
    // A stopped clock: every claim of the pass is made in the same millisecond.
    const now = Date.now();
    const { controller: engineUnderTest, runs } = await engine(store, 2, { now: () => now });
    // One pass sees A, then B backing off (it waits), then C: both A and C go to the one worker.
    await store.insertJob(queuedJob('a', now));
    await store.insertJob(queuedJob('b', now + 1, { notBefore: now + 600_000 }));
    await store.insertJob(queuedJob('c', now + 2));
    engineUnderTest.wake();
    await succeeded(store, 'job_a');
    await succeeded(store, 'job_c');
    expect(runs.filter((run) => run.job.id === 'job_a')).toHaveLength(1);
    expect(runs.filter((run) => run.job.id === 'job_c')).toHaveLength(1);
    expect((await store.getJob('job_b'))!.state).toBe('QUEUED');
    const [worker] = await store.listWorkers();
    expect(worker!.runningJobIds).toEqual([]);
  }, 30_000);

  it('still gives a free worker a job from past the head of a queue deeper than a pass reads, when no job at the head suits it', async () => {
    const store = new MemoryStore();
    const { controller: engineUnderTest } = await engine(store);
    // More jobs than a pass reads (10,000) that no provider can run, ahead of one it can.
    for (let index = 0; index < 10_050; index += 1) {
      await engineUnderTest.queue({ name: `gpu-${index}`, command: 'true', labels: { gpu: 'yes' } });
    }
    const plain = await engineUnderTest.queue({ name: 'plain', command: 'true' });
    expect((await succeeded(store, plain.id)).workerId).toBeDefined();
    expect(await store.queuedJobs(20_000)).toHaveLength(10_050);
  }, 30_000);

  it('reads only the head of a deep queue while its worker is busy, and reads further back for a job a free slot suits', async () => {
    const store = new QueueReadsRecorder();
    const { controller: engineUnderTest } = await engine(store, 2);
    const now = Date.now();
    for (let index = 0; index < 200; index += 1) await store.insertJob(queuedJob(`deep-${index}`, now + index));
    store.limits.length = 0;
    engineUnderTest.wake();
    await succeeded(store, 'job_deep-199');
    // Each pass read a few jobs from the head, not the whole queue (it read 10,000 before), nor 32 (the fewest
    // it read before): a few more than the worker's two slots.
    expect(store.limits.length).toBeGreaterThan(0);
    expect(Math.max(...store.limits)).toBeLessThanOrEqual(8);

    // 100 jobs nobody can run, then one the worker can: the pass reads past them to find it.
    for (let index = 0; index < 100; index += 1) await engineUnderTest.queue({ name: `gpu-${index}`, command: 'true', labels: { gpu: 'yes' } });
    const plain = await engineUnderTest.queue({ name: 'plain', command: 'true' });
    expect((await succeeded(store, plain.id)).workerId).toBeDefined();
  }, 30_000);
});

describe("a scheduling pass's reads", () => {
  it.each([
    ['in one call with Store.listWorkersAndQueue', true],
    ['as listWorkers then queuedJobs on a store without it', false],
  ])('reads the workers and the head of the queue %s', async (_, fused) => {
    const store = new PassReadsRecorder(fused);
    const { controller: engineUnderTest } = await engine(store, 2);
    store.reads = { fused: 0, listWorkers: 0, queuedJobs: 0 };
    const jobs = await Promise.all(Array.from({ length: 10 }, (_, index) => engineUnderTest.queue({ name: `job-${index}`, command: 'true' })));
    for (const job of jobs) await succeeded(store, job.id);
    if (fused) {
      expect(store.reads.fused).toBeGreaterThan(0);
      expect(store.reads.listWorkers).toBe(0);
    } else {
      expect(store.listWorkersAndQueue).toBeUndefined();
      expect(store.reads.listWorkers).toBeGreaterThan(0);
      expect(store.reads.queuedJobs).toBeGreaterThanOrEqual(store.reads.listWorkers);
    }
  }, 30_000);

  it('reads at most 64 queued jobs with the workers, and the rest of a long first page on its own', async () => {
    const store = new PassReadsRecorder(true);
    const { controller: engineUnderTest } = await engine(store, 200);
    store.reads = { fused: 0, listWorkers: 0, queuedJobs: 0 };
    const jobs = await Promise.all(Array.from({ length: 150 }, (_, index) => engineUnderTest.queue({ name: `job-${index}`, command: 'true' })));
    for (const job of jobs) await succeeded(store, job.id);
    expect(store.fusedLimits.length).toBeGreaterThan(0);
    expect(Math.max(...store.fusedLimits)).toBe(64);
    // A pass with 200 free slots read its first page past the fused read.
    expect(Math.max(...store.queuedLimits)).toBeGreaterThan(64);
  }, 30_000);
});

/** Counts a pass's reads: `listWorkersAndQueue` calls, and `listWorkers` and `queuedJobs` calls made outside them. */
class PassReadsRecorder extends MemoryStore {
  reads = { fused: 0, listWorkers: 0, queuedJobs: 0 };
  /** The queue limits of the `listWorkersAndQueue` calls, and of the `queuedJobs` calls made outside them. */
  readonly fusedLimits: number[] = [];
  readonly queuedLimits: number[] = [];
  private inFused = false;

  constructor(fused: boolean) {
    super();
    if (!fused) Object.defineProperty(this, 'listWorkersAndQueue', { value: undefined });
  }

  override async listWorkersAndQueue(workerStates: readonly WorkerState[], queueLimit: number): Promise<WorkersAndQueue> {
    this.reads.fused += 1;
    this.fusedLimits.push(queueLimit);
    this.inFused = true;
    try {
      return await super.listWorkersAndQueue(workerStates, queueLimit);
    } finally {
      this.inFused = false;
    }
  }

  override async listWorkers(filter?: { states?: readonly WorkerState[] }): Promise<Worker[]> {
    if (!this.inFused) this.reads.listWorkers += 1;
    return super.listWorkers(filter);
  }

  override async queuedJobs(limit: number): Promise<Job[]> {
    if (!this.inFused) {
      this.reads.queuedJobs += 1;
      this.queuedLimits.push(limit);
    }
    return super.queuedJobs(limit);
  }
}

