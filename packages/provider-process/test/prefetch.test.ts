import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createPlatform, MemoryStore, type Job, type Platform } from '@hodei/core';
import { ProcessProvider } from '../src';
import { eventually, waitForLine } from './helpers';

const dir = mkdtempSync(join(tmpdir(), 'hodei-prefetch-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * A job that takes the directory `lock` (failing when another job holds it: two jobs ran at once), appends
 * `name` to the file `order`, prints `started`, waits for the file `gate` when given, and lets go of the lock.
 */
function step(name: string, files: { lock: string; order: string; gate?: string }): string {
  const wait = files.gate ? `while [ ! -e ${files.gate} ]; do sleep 0.05; done; ` : 'sleep 0.3; ';
  return `mkdir ${files.lock} || exit 9; echo ${name} >> ${files.order}; echo started; ${wait}rmdir ${files.lock}`;
}

const lines = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').filter(Boolean) : []);

describe('prefetch: a worker holds jobs beyond its slots', { timeout: 60_000 }, () => {
  let platform: Platform | undefined;
  let provider: ProcessProvider;
  let store: MemoryStore;
  afterEach(async () => {
    await platform?.close();
    platform = undefined;
    expect(provider.pids).toEqual([]);
  });

  /** A platform with one process worker of capacity 1 at a time, and `prefetch` 3. */
  async function start(prefetch = 3) {
    store = new MemoryStore();
    provider = new ProcessProvider({ maxWorkers: 1, workerCapacity: 1, stopGraceMs: 2_000 });
    platform = await createPlatform({ providers: [provider], store, prefetch });
    return platform;
  }

  /** Files of one test, in the test directory. */
  function files(test: string) {
    return { lock: join(dir, `${test}-lock`), order: join(dir, `${test}-order`), gate: join(dir, `${test}-gate`) };
  }

  /** Waits until every job of `ids` is held by one worker (ASSIGNED or RUNNING to it) and returns them. */
  async function heldTogether(ids: string[]): Promise<Job[]> {
    let jobs: Job[] = [];
    await eventually(async () => {
      jobs = await Promise.all(ids.map(async (id) => (await store.getJob(id))!));
      const workerIds = new Set(jobs.map((job) => job.workerId));
      return workerIds.size === 1 && jobs[0]!.workerId !== undefined && jobs.every((job) => job.state === 'ASSIGNED' || job.state === 'RUNNING');
    }, 20_000);
    return jobs;
  }

  /**
   * Queues `first` (which waits for the test's gate, with 2 attempts) and three jobs after it, and waits until one
   * worker holds all four: `first` running, the others waiting on the worker.
   */
  async function holdFour(test: string) {
    const f = files(test);
    const first = await platform!.client.queue({ name: 'first', command: step('first', f), maxAttempts: 2 });
    const others: Job[] = [];
    for (const name of ['w1', 'w2', 'w3']) others.push(await platform!.client.queue({ name, command: step(name, { lock: f.lock, order: f.order }) }));
    await waitForLine(platform!.client, first.id, 'started');
    const held = await heldTogether([first.id, ...others.map((job) => job.id)]);
    return { f, first, others, held };
  }

  it('sends a worker of capacity 1 four queued jobs at once; it runs them one at a time in queue order', async () => {
    const platform = await start(3);
    const f = files('order');
    const ids: string[] = [];
    for (const name of ['j1', 'j2', 'j3', 'j4']) {
      ids.push((await platform.client.queue({ name, command: step(name, name === 'j1' ? f : { lock: f.lock, order: f.order }) })).id);
    }
    await waitForLine(platform.client, ids[0]!, 'started');
    const held = await heldTogether(ids);
    expect(held.map((job) => job.state)).toEqual(['RUNNING', 'ASSIGNED', 'ASSIGNED', 'ASSIGNED']);
    expect(held.slice(1).every((job) => job.startedAt === undefined)).toBe(true);
    const worker = (await store.getWorker(held[0]!.workerId!))!;
    expect(worker).toMatchObject({ capacity: 4, state: 'BUSY', runningJobIds: ids });

    writeFileSync(f.gate, '');
    const done = await Promise.all(ids.map((id) => platform.client.wait(id)));
    expect(done.map((job) => [job.state, job.attempt])).toEqual(Array.from({ length: 4 }, () => ['SUCCEEDED', 1]));
    expect(lines(f.order)).toEqual(['j1', 'j2', 'j3', 'j4']);
    // Each job's start is when it really started (each after the one before it), not when it was sent.
    const starts = done.map((job) => job.startedAt!);
    expect(starts).toEqual([...starts].sort((a, b) => a - b));
    expect(new Set(starts).size).toBe(4);
  });

  it('cancels a job waiting on its worker: CANCELLED without ever starting, while the others run', async () => {
    const platform = await start(2);
    const f = files('cancel');
    const first = await platform.client.queue({ name: 'first', command: step('first', f) });
    const waiting = await platform.client.queue({ name: 'waiting', command: step('waiting', { lock: f.lock, order: f.order }) });
    const last = await platform.client.queue({ name: 'last', command: step('last', { lock: f.lock, order: f.order }) });
    await waitForLine(platform.client, first.id, 'started');
    await heldTogether([first.id, waiting.id, last.id]);

    await platform.client.cancel(waiting.id);
    expect(await platform.client.wait(waiting.id)).toMatchObject({ state: 'CANCELLED' });
    expect((await store.getJob(first.id))!.state).toBe('RUNNING');

    writeFileSync(f.gate, '');
    expect(await platform.client.wait(first.id)).toMatchObject({ state: 'SUCCEEDED' });
    expect(await platform.client.wait(last.id)).toMatchObject({ state: 'SUCCEEDED' });
    const job = (await store.getJob(waiting.id))!;
    expect(job.startedAt).toBeUndefined();
    expect(lines(f.order)).toEqual(['first', 'last']);
    expect((await store.listAudit(waiting.id)).map((event) => event.eventType)).not.toContain('job.started');
  });

  it('re-queues the waiting jobs of a killed worker with their attempt not counted; they run on the next worker', async () => {
    const platform = await start(3);
    const { f, first, others, held } = await holdFour('killed');
    const lostWorker = held[0]!.workerId!;
    const [pid] = provider.pids;
    rmSync(f.lock, { recursive: true, force: true }); // the killed run's lock
    process.kill(pid!, 'SIGKILL');

    // The running job counts an attempt; the waiting ones went back with theirs unchanged, and run elsewhere.
    await eventually(async () => (await store.getJob(first.id))!.attempt === 2, 20_000);
    writeFileSync(f.gate, '');
    const done = await Promise.all([first, ...others].map((job) => platform.client.wait(job.id)));
    expect(done.map((job) => [job.spec.name, job.state, job.attempt])).toEqual([
      ['first', 'SUCCEEDED', 2],
      ['w1', 'SUCCEEDED', 1],
      ['w2', 'SUCCEEDED', 1],
      ['w3', 'SUCCEEDED', 1],
    ]);
    expect(done.every((job) => job.workerId !== undefined && job.workerId !== lostWorker)).toBe(true);
    // The waiting jobs never started on the lost worker: each ran once.
    expect(lines(f.order).filter((name) => name !== 'first')).toEqual(['w1', 'w2', 'w3']);
    const lost = (await store.getWorker(lostWorker))!;
    expect(lost.state).toBe('LOST');
  });

  it('on shutdown re-queues the jobs waiting on a worker with their attempt unchanged, the running one counted', async () => {
    const platform = await start(3);
    const { f, first, others } = await holdFour('shutdown');
    expect(await platform.stop({ graceMs: 0 })).toEqual({ drained: false });
    expect(await store.getJob(first.id)).toMatchObject({ state: 'QUEUED', attempt: 2 });
    for (const job of others) expect(await store.getJob(job.id)).toMatchObject({ state: 'QUEUED', attempt: 1 });
    expect(lines(f.order)).toEqual(['first']);
  });

  it('a server that drains (stop with a grace) gets the waiting jobs back uncounted, never started, and lets the running one finish', async () => {
    const platform = await start(3);
    const { f, first, others } = await holdFour('drain');
    const stopping = platform.stop({ graceMs: 20_000 });
    // Given back while the first job still runs (its gate is closed): none of them started.
    await eventually(async () => (await Promise.all(others.map((job) => store.getJob(job.id)))).every((job) => job?.state === 'QUEUED'), 20_000);
    writeFileSync(f.gate, '');
    expect(await stopping).toEqual({ drained: true });
    expect(await store.getJob(first.id)).toMatchObject({ state: 'SUCCEEDED', attempt: 1 });
    for (const job of others) expect(await store.getJob(job.id)).toMatchObject({ state: 'QUEUED', attempt: 1 });
    expect(lines(f.order)).toEqual(['first']);
  });
});
