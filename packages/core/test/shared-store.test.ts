import { afterEach, describe, expect, it } from 'vitest';
import { createPlatform, MemoryStore, type Platform, type Provider } from '../src';

const idleProvider = (name: string): Provider => ({
  specificationVersion: 'v1',
  name,
  capabilities: { maxWorkers: 1, workerCapacity: 1, labels: {} },
  createWorker: async () => undefined,
  destroyWorker: async () => undefined,
  onWorkerExit: () => () => undefined,
  close: async () => undefined,
});

describe('engines sharing one store', () => {
  const platforms: Platform[] = [];
  afterEach(async () => {
    await Promise.all(platforms.splice(0).map((platform) => platform.close()));
  });

  it('recovers the job of a dead engine\'s silent worker, and leaves a live engine\'s workers and jobs alone', async () => {
    const store = new MemoryStore();
    const now = Date.now();
    const spec = { name: 'j', command: 'true', args: [], env: {}, secretEnv: [], labels: {}, timeoutMs: 60_000, maxAttempts: 1, priority: 0 };
    // A worker of a server that died: READY in the store, heartbeat long gone, running a job.
    await store.insertWorker({ id: 'w-dead', provider: 'p', state: 'BUSY', capacity: 1, runningJobIds: ['job-orphan'], labels: {}, createdAt: now - 60_000, lastHeartbeat: now - 60_000 });
    await store.insertJob({ id: 'job-orphan', spec, state: 'RUNNING', attempt: 1, epoch: 1, workerId: 'w-dead', createdAt: now - 60_000 });
    // A worker of a server that is alive: fresh heartbeat, running a job.
    await store.insertWorker({ id: 'w-alive', provider: 'p', state: 'BUSY', capacity: 1, runningJobIds: ['job-busy'], labels: {}, createdAt: now, lastHeartbeat: now + 60_000 });
    await store.insertJob({ id: 'job-busy', spec, state: 'RUNNING', attempt: 1, epoch: 1, workerId: 'w-alive', createdAt: now });

    const platform = await createPlatform({ store, providers: [idleProvider('p')], heartbeatTimeoutMs: 1_000 });
    platforms.push(platform);
    expect(await platform.client.wait('job-orphan')).toMatchObject({ state: 'FAILED', failureReason: 'WORKER_LOST' });
    expect((await store.getWorker('w-dead'))?.state).toBe('LOST');

    await platform.close();
    expect((await store.getJob('job-busy'))?.state).toBe('RUNNING');
    expect((await store.getWorker('w-alive'))?.state).toBe('BUSY');
  });

  it("re-queues uncounted the jobs that waited on a dead engine's worker (prefetch), by the slots its registration recorded", async () => {
    const store = new MemoryStore();
    const now = Date.now();
    const spec = { name: 'j', command: 'true', args: [], env: {}, secretEnv: [], labels: {}, timeoutMs: 60_000, maxAttempts: 1, priority: 0 };
    // A worker of a server that died, registered with 1 slot and a prefetch of 3: one job running, three waiting.
    const held = ['job-running', 'job-waiting-1', 'job-waiting-2', 'job-waiting-3'];
    await store.insertWorker({ id: 'w-dead', provider: 'p', state: 'BUSY', capacity: 4, runningJobIds: held, labels: {}, createdAt: now - 60_000, lastHeartbeat: now - 60_000 });
    await store.appendAudit({ eventType: 'worker.registered', correlationId: 'w-dead', occurredAt: now - 60_000, details: { slots: 1, prefetch: 3 } });
    for (const [index, id] of held.entries()) {
      await store.insertJob({ id, spec, state: index === 0 ? 'RUNNING' : 'ASSIGNED', attempt: 1, epoch: 1, workerId: 'w-dead', createdAt: now - 60_000 });
    }
    const platform = await createPlatform({ store, providers: [idleProvider('p')], heartbeatTimeoutMs: 1_000 });
    platforms.push(platform);
    expect(await platform.client.wait('job-running')).toMatchObject({ state: 'FAILED', failureReason: 'WORKER_LOST' });
    for (const id of held.slice(1)) expect(await store.getJob(id)).toMatchObject({ state: 'QUEUED', attempt: 1 });
  });

  it('a job re-queued by one engine is not started by another before its retry backoff ends', async () => {
    const store = new MemoryStore();
    const engineA: Provider & { started: string[] } = {
      ...idleProvider('a'),
      started: [],
      async createWorker(request) {
        this.started.push(request.workerId);
      },
    };
    /** When engine B asked for a worker: it does so only for a job it has decided may run now. */
    const engineB: Provider & { askedAt: number[] } = {
      ...idleProvider('b'),
      askedAt: [],
      async createWorker() {
        this.askedAt.push(Date.now());
      },
    };
    const a = await createPlatform({ store, providers: [engineA], retryBackoffMs: 1_500 });
    platforms.push(a);
    const job = await a.client.queue({ name: 'retried', command: 'true', maxAttempts: 2 });
    while (engineA.started.length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    // Engine A's worker runs the job; engine B joins the store meanwhile and has nothing to do.
    await store.updateJob(job.id, { states: ['QUEUED'] }, { state: 'RUNNING', workerId: engineA.started[0]!, epoch: 1, startedAt: Date.now() });
    const b = await createPlatform({ store, providers: [engineB] });
    platforms.push(b);

    // Engine A stops: the job goes back to the queue with its backoff (1.5 s ±20 % for a first retry) stored.
    await a.close();
    const requeued = await store.getJob(job.id);
    expect(requeued).toMatchObject({ state: 'QUEUED', attempt: 2 });
    const notBefore = requeued!.notBefore!;
    expect(notBefore).toBeGreaterThanOrEqual(Date.now() + 1);

    const deadline = Date.now() + 20_000;
    while (engineB.askedAt.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(engineB.askedAt).toHaveLength(1);
    expect(engineB.askedAt[0]).toBeGreaterThanOrEqual(notBefore);
  });
});

describe('restart on a durable store', () => {
  it('a job running when the server stops is queued again when attempts remain; one without attempts fails with SHUTDOWN', async () => {
    const store = new MemoryStore();
    const handOver: Provider & { started: string[] } = {
      ...idleProvider('p'),
      capabilities: { maxWorkers: 2, workerCapacity: 1, labels: {} },
      started: [],
      async createWorker(request) {
        this.started.push(request.workerId);
      },
    };
    const first = await createPlatform({ store, providers: [handOver] });
    const retried = await first.client.queue({ name: 'retried', command: 'true', maxAttempts: 2 });
    const single = await first.client.queue({ name: 'single', command: 'true' });
    // Pretend both were started on this server's workers, then stop it.
    for (const [job, index] of [[retried, 0], [single, 1]] as const) {
      while (handOver.started.length <= index) await new Promise((resolve) => setTimeout(resolve, 10));
      const workerId = handOver.started[index]!;
      await store.updateJob(job.id, { states: ['QUEUED'] }, { state: 'RUNNING', workerId, epoch: 1, startedAt: Date.now() });
    }
    await first.close();
    expect(await store.getJob(retried.id)).toMatchObject({ state: 'QUEUED', attempt: 2 });
    expect(await store.getJob(single.id)).toMatchObject({ state: 'FAILED', failureReason: 'SHUTDOWN' });
  });
});
