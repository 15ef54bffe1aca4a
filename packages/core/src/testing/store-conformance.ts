import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Job, JobSpec, JobState } from '../domain/job';
import type { Worker } from '../domain/worker';
import type { LogLineBatch, NewLogLine, NewLogLineBatch, Store } from '../ports/store';
import { packLogLineBatch, unpackLogLineBatch } from '../store/log-line-batch';

/** What a conformance run needs: a fresh, empty store per test, and optionally how to dispose of it. */
export interface StoreUnderTest {
  /** A new, empty store. */
  store: Store;
  /** Runs after the test, after `store.close()` (drop the database, remove files). */
  cleanup?: () => Promise<void>;
  /**
   * Optional `Store` methods this store does not implement; their cases then check only that they are
   * absent. A store that implements one is always held to its cases.
   */
  lacks?: readonly (
    | 'deleteFinishedJobs'
    | 'onJobChanged'
    | 'claimJobs'
    | 'getJobAndLogCount'
    | 'addRunningJobs'
    | 'removeRunningJobs'
    | 'listWorkersAndQueue'
    | 'compareAndSetJob'
  )[];
}

const BASE_TIME = 1_700_000_000_000;

function spec(overrides: Partial<JobSpec> = {}): JobSpec {
  return {
    name: 'conformance',
    command: 'echo',
    args: ['hello'],
    env: {},
    secretEnv: [],
    timeoutMs: 60_000,
    labels: {},
    maxAttempts: 1,
    priority: 0,
    ...overrides,
  };
}

let counter = 0;
function uniqueId(prefix: string): string {
  counter += 1;
  return `${prefix}_${Date.now().toString(36)}_${counter}_${Math.random().toString(36).slice(2, 8)}`;
}

/** A QUEUED job, as the engine creates it. */
export function makeTestJob(overrides: Partial<Job> = {}): Job {
  return { id: uniqueId('job'), spec: spec(), state: 'QUEUED', attempt: 1, epoch: 0, createdAt: BASE_TIME, ...overrides };
}

/** A CREATING worker, as the engine creates it. */
export function makeTestWorker(overrides: Partial<Worker> = {}): Worker {
  return {
    id: uniqueId('w'),
    provider: 'process',
    state: 'CREATING',
    capacity: 1,
    runningJobIds: [],
    labels: {},
    createdAt: BASE_TIME,
    ...overrides,
  };
}

function lines(count: number, prefix = 'line'): NewLogLine[] {
  return Array.from({ length: count }, (_, index) => ({
    timestamp: BASE_TIME + index,
    stream: index % 3 === 0 ? 'stderr' : 'stdout',
    text: `${prefix} ${index + 1}`,
  }));
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error, `expected the call to reject with ${code}`).toBeDefined();
  expect((error as { code?: string }).code).toBe(code);
}

/**
 * Registers a vitest `describe` with every behaviour of a `Store` the engine relies on. `makeStore` is
 * called before each test and must return an empty store; `cleanup` (if any) runs after the test, after
 * `store.close()`.
 *
 * @example
 * storeConformance('memory', async () => ({ store: new MemoryStore() }));
 */
export function storeConformance(name: string, makeStore: () => Promise<StoreUnderTest>): void {
  describe(`Store conformance: ${name}`, () => {
    let store: Store;
    let current: StoreUnderTest | undefined;

    beforeEach(async () => {
      current = await makeStore();
      store = current.store;
    });

    afterEach(async () => {
      const done = current;
      current = undefined;
      if (!done) return;
      try {
        await done.store.close();
      } finally {
        await done.cleanup?.();
      }
    });

    it('declares its specification version and a name', () => {
      expect(store.specificationVersion).toBe('v1');
      expect(typeof store.name).toBe('string');
      expect(store.name.length).toBeGreaterThan(0);
    });

    describe('jobs', () => {
      it('returns undefined for an unknown job', async () => {
        expect(await store.getJob('job_missing')).toBeUndefined();
      });

      it('round-trips a minimal job', async () => {
        const job = makeTestJob();
        await store.insertJob(job);
        expect(await store.getJob(job.id)).toEqual(job);
      });

      it('round-trips every field of a job', async () => {
        const job = makeTestJob({
          spec: spec({
            name: 'full "job" with \'quotes\' and ünïcödé ✓',
            command: undefined,
            args: [],
            script: { interpreter: '/bin/bash', content: 'echo "$HOME"\nexit 3\n' },
            env: { A: '1', 'WITH SPACE': 'x y', EMPTY: '' },
            workingDir: '/tmp',
            labels: { os: 'linux', gpu: 'none' },
            maxAttempts: 3,
            priority: -7,
            timeoutMs: 1_500,
          }),
          state: 'FAILED',
          attempt: 2,
          epoch: 5,
          workerId: 'w_1',
          createdAt: BASE_TIME + 1,
          assignedAt: BASE_TIME + 2,
          startedAt: BASE_TIME + 3,
          completedAt: BASE_TIME + 4_567,
          exitCode: 3,
          signal: 'SIGTERM',
          errorMessage: 'exit code 3\nsecond line',
          failureReason: 'EXIT_CODE',
          durationMs: 4_564,
          cancelRequestedAt: BASE_TIME + 4_000,
        });
        delete job.spec.command;
        await store.insertJob(job);
        expect(await store.getJob(job.id)).toEqual(job);
      });

      it('refuses a second job with the same id (CONFLICT)', async () => {
        const job = makeTestJob();
        await store.insertJob(job);
        await expectCode(store.insertJob({ ...job, createdAt: BASE_TIME + 10 }), 'CONFLICT');
        expect(await store.getJob(job.id)).toEqual(job);
      });

      it('returns snapshots: mutating an inserted or returned job does not change the store', async () => {
        const job = makeTestJob({ spec: spec({ labels: { os: 'linux' }, env: { A: '1' }, args: ['x'] }) });
        const expected = structuredClone(job);
        await store.insertJob(job);
        job.state = 'RUNNING';
        job.spec.labels.os = 'changed';
        job.spec.args.push('more');
        const read = (await store.getJob(job.id))!;
        expect(read).toEqual(expected);
        read.epoch = 99;
        read.spec.env.A = 'changed';
        read.spec.args.length = 0;
        expect(await store.getJob(job.id)).toEqual(expected);
      });

      it('lists jobs newest first', async () => {
        const jobs = [0, 1, 2, 3].map((index) => makeTestJob({ createdAt: BASE_TIME + index * 1_000 }));
        for (const job of jobs) await store.insertJob(job);
        const listed = await store.listJobs();
        expect(listed.map((job) => job.id)).toEqual([...jobs].reverse().map((job) => job.id));
        expect(listed[0]).toEqual(jobs[3]);
      });

      it('lists jobs created in the same millisecond newest inserted first', async () => {
        const jobs = [0, 1, 2].map(() => makeTestJob({ createdAt: BASE_TIME }));
        for (const job of jobs) await store.insertJob(job);
        expect((await store.listJobs()).map((job) => job.id)).toEqual([...jobs].reverse().map((job) => job.id));
      });

      it('filters listed jobs by state and honours the limit', async () => {
        const states: JobState[] = ['QUEUED', 'RUNNING', 'SUCCEEDED', 'RUNNING', 'FAILED', 'ASSIGNED', 'RUNNING'];
        const jobs = states.map((state, index) => makeTestJob({ state, createdAt: BASE_TIME + index }));
        for (const job of jobs) await store.insertJob(job);

        const running = await store.listJobs({ states: ['RUNNING'] });
        expect(running.map((job) => job.id)).toEqual([jobs[6]!.id, jobs[3]!.id, jobs[1]!.id]);

        const active = await store.listJobs({ states: ['ASSIGNED', 'RUNNING'], limit: 2 });
        expect(active.map((job) => job.id)).toEqual([jobs[6]!.id, jobs[5]!.id]);

        expect((await store.listJobs({ limit: 3 })).map((job) => job.id)).toEqual(
          [jobs[6]!, jobs[5]!, jobs[4]!].map((job) => job.id),
        );
        expect(await store.listJobs({ states: ['CANCELLED'] })).toEqual([]);
        expect(await store.listJobs({ limit: 0 })).toEqual([]);
        expect(await store.listJobs({ states: ['RUNNING'], limit: Number.MAX_SAFE_INTEGER })).toHaveLength(3);
      });

      it('lists at most 100 jobs by default', async () => {
        const jobs = Array.from({ length: 105 }, (_, index) => makeTestJob({ createdAt: BASE_TIME + index }));
        await Promise.all(jobs.map((job) => store.insertJob(job)));
        const listed = await store.listJobs();
        expect(listed).toHaveLength(100);
        expect(listed[0]!.id).toBe(jobs[104]!.id);
        expect(listed[99]!.id).toBe(jobs[5]!.id);
      });

      it('returns queued jobs by priority (highest first), then oldest first', async () => {
        const low = makeTestJob({ spec: spec({ priority: -5 }), createdAt: BASE_TIME });
        const oldNormal = makeTestJob({ createdAt: BASE_TIME + 1 });
        const newNormal = makeTestJob({ createdAt: BASE_TIME + 2 });
        const urgent = makeTestJob({ spec: spec({ priority: 10 }), createdAt: BASE_TIME + 3 });
        const running = makeTestJob({ state: 'RUNNING', spec: spec({ priority: 100 }), createdAt: BASE_TIME });
        const done = makeTestJob({ state: 'SUCCEEDED', spec: spec({ priority: 100 }), createdAt: BASE_TIME });
        for (const job of [newNormal, running, low, urgent, done, oldNormal]) await store.insertJob(job);

        const queued = await store.queuedJobs(10);
        expect(queued.map((job) => job.id)).toEqual([urgent.id, oldNormal.id, newNormal.id, low.id]);
        expect(queued[0]).toEqual(urgent);
        expect((await store.queuedJobs(2)).map((job) => job.id)).toEqual([urgent.id, oldNormal.id]);
        expect(await store.queuedJobs(0)).toEqual([]);
      });

      it('tracks the queue through updates: claimed jobs leave it, re-queued jobs return', async () => {
        const first = makeTestJob({ createdAt: BASE_TIME });
        const second = makeTestJob({ createdAt: BASE_TIME + 1 });
        await store.insertJob(first);
        await store.insertJob(second);
        await store.updateJob(first.id, { states: ['QUEUED'], epoch: 0 }, { state: 'ASSIGNED', epoch: 1, workerId: 'w' });
        expect((await store.queuedJobs(10)).map((job) => job.id)).toEqual([second.id]);
        await store.updateJob(first.id, { states: ['ASSIGNED'], epoch: 1 }, { state: 'QUEUED', attempt: 2, workerId: undefined });
        expect((await store.queuedJobs(10)).map((job) => job.id)).toEqual([first.id, second.id]);
      });

      it('stores the end of a re-queued job\'s retry backoff (notBefore), keeps its queue place, and clears it', async () => {
        const first = makeTestJob({ createdAt: BASE_TIME });
        const second = makeTestJob({ createdAt: BASE_TIME + 1 });
        await store.insertJob(first);
        await store.insertJob(second);
        await store.updateJob(first.id, { states: ['QUEUED'], epoch: 0 }, { state: 'ASSIGNED', epoch: 1, workerId: 'w' });
        const notBefore = BASE_TIME + 60_123;
        const requeued = await store.updateJob(
          first.id,
          { states: ['ASSIGNED'], epoch: 1 },
          { state: 'QUEUED', attempt: 2, workerId: undefined, notBefore },
        );
        expect(requeued).toMatchObject({ state: 'QUEUED', attempt: 2, notBefore });
        expect(await store.getJob(first.id)).toMatchObject({ notBefore });
        const queued = await store.queuedJobs(10);
        expect(queued.map((job) => [job.id, job.notBefore])).toEqual([
          [first.id, notBefore],
          [second.id, undefined],
        ]);
        expect((await store.listJobs({ states: ['QUEUED'] })).find((job) => job.id === first.id)?.notBefore).toBe(notBefore);
        const assigned = await store.updateJob(
          first.id,
          { states: ['QUEUED'], epoch: 1 },
          { state: 'ASSIGNED', epoch: 2, workerId: 'w', notBefore: undefined },
        );
        expect(assigned).not.toHaveProperty('notBefore');
        expect(await store.getJob(first.id)).not.toHaveProperty('notBefore');
        const inserted = makeTestJob({ attempt: 3, notBefore: BASE_TIME + 7 });
        await store.insertJob(inserted);
        expect(await store.getJob(inserted.id)).toEqual(inserted);
      });

      it('applies a patch when the state and epoch guards match and returns the updated job', async () => {
        const job = makeTestJob();
        await store.insertJob(job);
        const updated = await store.updateJob(
          job.id,
          { states: ['QUEUED'], epoch: 0 },
          { state: 'ASSIGNED', workerId: 'w_1', epoch: 1, assignedAt: BASE_TIME + 5 },
        );
        const expected = { ...job, state: 'ASSIGNED', workerId: 'w_1', epoch: 1, assignedAt: BASE_TIME + 5 };
        expect(updated).toEqual(expected);
        expect(await store.getJob(job.id)).toEqual(expected);
      });

      it('applies a patch with an empty guard', async () => {
        const job = makeTestJob({ state: 'RUNNING', epoch: 3 });
        await store.insertJob(job);
        const updated = await store.updateJob(job.id, {}, { cancelRequestedAt: BASE_TIME + 9 });
        expect(updated).toEqual({ ...job, cancelRequestedAt: BASE_TIME + 9 });
      });

      it('returns the job unchanged for an empty patch when the guard matches', async () => {
        const job = makeTestJob();
        await store.insertJob(job);
        expect(await store.updateJob(job.id, { states: ['QUEUED'], epoch: 0 }, {})).toEqual(job);
      });

      it('refuses the patch when the state guard does not match', async () => {
        const job = makeTestJob({ state: 'RUNNING', epoch: 1 });
        await store.insertJob(job);
        expect(await store.updateJob(job.id, { states: ['QUEUED', 'ASSIGNED'] }, { state: 'CANCELLED' })).toBeUndefined();
        expect(await store.updateJob(job.id, { states: [] }, { state: 'CANCELLED' })).toBeUndefined();
        expect(await store.getJob(job.id)).toEqual(job);
      });

      it('refuses the patch when the epoch guard does not match (fencing)', async () => {
        const job = makeTestJob({ state: 'RUNNING', epoch: 2 });
        await store.insertJob(job);
        expect(await store.updateJob(job.id, { epoch: 1 }, { state: 'SUCCEEDED' })).toBeUndefined();
        expect(await store.updateJob(job.id, { states: ['RUNNING'], epoch: 3 }, { state: 'SUCCEEDED' })).toBeUndefined();
        expect(await store.getJob(job.id)).toEqual(job);
        expect(await store.updateJob(job.id, { states: ['RUNNING'], epoch: 2 }, { state: 'SUCCEEDED' })).toMatchObject({
          state: 'SUCCEEDED',
        });
      });

      it('refuses the patch when the cancel-request guard does not match, also for updates made together', async () => {
        const asked = makeTestJob({ state: 'RUNNING', epoch: 1, workerId: 'w_1', cancelRequestedAt: BASE_TIME + 4 });
        const running = makeTestJob({ state: 'RUNNING', epoch: 1, workerId: 'w_1' });
        for (const job of [asked, running]) await store.insertJob(job);
        const requeue = { state: 'QUEUED', attempt: 2, workerId: undefined, notBefore: BASE_TIME + 9 } as const;
        // Back to the queue only while no cancel was asked: made together, each update meets its own job's request.
        const [askedRequeued, runningRequeued] = await Promise.all(
          [asked, running].map((job) => store.updateJob(job.id, { states: ['RUNNING'], epoch: 1, cancelRequested: false }, requeue)),
        );
        expect(askedRequeued).toBeUndefined();
        expect(await store.getJob(asked.id)).toEqual(asked);
        expect(runningRequeued).toMatchObject({ state: 'QUEUED', attempt: 2 });
        expect(runningRequeued).not.toHaveProperty('cancelRequestedAt');
        // And the other way round.
        expect(await store.updateJob(running.id, { cancelRequested: true }, { state: 'CANCELLED' })).toBeUndefined();
        expect(await store.updateJob(asked.id, { states: ['RUNNING'], cancelRequested: true }, { state: 'CANCELLED' })).toMatchObject({
          state: 'CANCELLED',
          cancelRequestedAt: BASE_TIME + 4,
        });
      });

      it('countJobsByState, where the store has it, counts the jobs of each state', async () => {
        if (!store.countJobsByState) return;
        const before = await store.countJobsByState();
        const jobs = [makeTestJob(), makeTestJob(), makeTestJob({ state: 'RUNNING', epoch: 1, workerId: 'w_1' }), makeTestJob({ state: 'SUCCEEDED', epoch: 1, completedAt: BASE_TIME + 1 })];
        for (const job of jobs) await store.insertJob(job);
        const after = await store.countJobsByState();
        const grew = (state: JobState) => (after[state] ?? 0) - (before[state] ?? 0);
        expect([grew('QUEUED'), grew('RUNNING'), grew('SUCCEEDED'), grew('FAILED')]).toEqual([2, 1, 1, 0]);
      });

      it('returns undefined when updating an unknown job', async () => {
        expect(await store.updateJob('job_missing', {}, { state: 'CANCELLED' })).toBeUndefined();
      });

      it('compareAndSetJob writes a patch and its events when the guard matches, and says whether it did', async () => {
        if (current?.lacks?.includes('compareAndSetJob')) return expect(store.compareAndSetJob).toBeUndefined();
        expect(typeof store.compareAndSetJob).toBe('function');
        const job = makeTestJob({ state: 'ASSIGNED', epoch: 2, workerId: 'w_1', assignedAt: BASE_TIME + 1 });
        await store.insertJob(job);
        const started = { eventType: 'job.started', correlationId: job.id, occurredAt: BASE_TIME + 2, details: { workerId: 'w_1', epoch: 2 } };
        const finished = { eventType: 'job.finished', correlationId: job.id, occurredAt: BASE_TIME + 3, details: { state: 'SUCCEEDED', exitCode: 0 } };
        const patch = { state: 'SUCCEEDED', startedAt: BASE_TIME + 2, completedAt: BASE_TIME + 3, exitCode: 0, durationMs: 1 } as const;
        // Not matched: nothing written, no event.
        expect(await store.compareAndSetJob!(job.id, { states: ['ASSIGNED'], epoch: 1 }, patch, [started, finished])).toBe(false);
        expect(await store.compareAndSetJob!(job.id, { states: ['RUNNING'], epoch: 2 }, patch, [started, finished])).toBe(false);
        expect(await store.compareAndSetJob!('job_missing', {}, patch)).toBe(false);
        expect(await store.getJob(job.id)).toEqual(job);
        expect(await store.listAudit(job.id)).toEqual([]);
        // Matched: written, with its events in order.
        expect(await store.compareAndSetJob!(job.id, { states: ['ASSIGNED'], epoch: 2 }, patch, [started, finished])).toBe(true);
        expect(await store.getJob(job.id)).toEqual({ ...job, ...patch });
        expect(await store.listAudit(job.id)).toEqual([started, finished]);
        expect(await store.compareAndSetJob!(job.id, { states: ['ASSIGNED'], epoch: 2 }, patch)).toBe(false);
      });

      it('compareAndSetJob calls made together each get their own outcome, as updateJob calls do', async () => {
        if (current?.lacks?.includes('compareAndSetJob')) return;
        const jobs = [0, 1, 2].map(() => makeTestJob({ state: 'RUNNING', epoch: 1, workerId: 'w_1' }));
        for (const job of jobs) await store.insertJob(job);
        const outcomes = await Promise.all([
          store.compareAndSetJob!(jobs[0]!.id, { states: ['RUNNING'], epoch: 1 }, { state: 'SUCCEEDED', completedAt: BASE_TIME }),
          store.compareAndSetJob!(jobs[1]!.id, { states: ['RUNNING'], epoch: 9 }, { state: 'SUCCEEDED', completedAt: BASE_TIME }),
          store.updateJob(jobs[2]!.id, { states: ['RUNNING'], epoch: 1 }, { state: 'FAILED', completedAt: BASE_TIME }),
          store.compareAndSetJob!(jobs[0]!.id, { states: ['RUNNING'], epoch: 1 }, { state: 'FAILED', completedAt: BASE_TIME }),
        ]);
        expect(outcomes).toEqual([true, false, { ...jobs[2], state: 'FAILED', completedAt: BASE_TIME }, false]);
        expect((await store.getJob(jobs[0]!.id))?.state).toBe('SUCCEEDED');
        expect((await store.getJob(jobs[1]!.id))?.state).toBe('RUNNING');
      });

      it('clears fields set to undefined in the patch', async () => {
        const job = makeTestJob({
          state: 'RUNNING',
          epoch: 1,
          workerId: 'w_1',
          assignedAt: BASE_TIME + 1,
          startedAt: BASE_TIME + 2,
          errorMessage: 'old',
        });
        await store.insertJob(job);
        const requeued = await store.updateJob(
          job.id,
          { states: ['ASSIGNED', 'RUNNING'], epoch: 1 },
          { state: 'QUEUED', attempt: 2, workerId: undefined, assignedAt: undefined, startedAt: undefined, errorMessage: 'lost' },
        );
        const expected: Job = { ...job, state: 'QUEUED', attempt: 2, errorMessage: 'lost' };
        delete expected.workerId;
        delete expected.assignedAt;
        delete expected.startedAt;
        expect(requeued).toEqual(expected);
        const stored = (await store.getJob(job.id))!;
        expect(stored).toEqual(expected);
        expect(stored.workerId).toBeUndefined();
        expect(stored.startedAt).toBeUndefined();
      });

      it('lets exactly one of 50 concurrent claims of one job win', async () => {
        const job = makeTestJob();
        await store.insertJob(job);
        const results = await Promise.all(
          Array.from({ length: 50 }, (_, index) =>
            store.updateJob(
              job.id,
              { states: ['QUEUED'], epoch: 0 },
              { state: 'ASSIGNED', workerId: `w_${index}`, epoch: 1, assignedAt: BASE_TIME + index },
            ),
          ),
        );
        const winners = results.filter((result) => result !== undefined);
        expect(winners).toHaveLength(1);
        expect(await store.getJob(job.id)).toEqual(winners[0]);
        expect(await store.queuedJobs(10)).toEqual([]);
      });

      it('claims each of many jobs exactly once across parallel claimers', async () => {
        const jobs = Array.from({ length: 30 }, (_, index) => makeTestJob({ createdAt: BASE_TIME + index }));
        for (const job of jobs) await store.insertJob(job);
        const claims = new Map<string, string[]>();
        const claimer = async (workerId: string): Promise<void> => {
          for (;;) {
            const queued = await store.queuedJobs(5);
            if (queued.length === 0) return;
            for (const candidate of queued) {
              const claimed = await store.updateJob(
                candidate.id,
                { states: ['QUEUED'], epoch: candidate.epoch },
                { state: 'ASSIGNED', workerId, epoch: candidate.epoch + 1 },
              );
              if (claimed) claims.set(candidate.id, [...(claims.get(candidate.id) ?? []), workerId]);
            }
          }
        };
        await Promise.all(['w_a', 'w_b', 'w_c', 'w_d', 'w_e'].map(claimer));
        expect(claims.size).toBe(jobs.length);
        for (const job of jobs) {
          const winners = claims.get(job.id)!;
          expect(winners).toHaveLength(1);
          expect(await store.getJob(job.id)).toMatchObject({ state: 'ASSIGNED', epoch: 1, workerId: winners[0] });
        }
      });

      it('gives each of many calls made at once its own outcome, as if made one by one', async () => {
        const [claimed, other, patched, existing] = [makeTestJob(), makeTestJob(), makeTestJob(), makeTestJob()];
        for (const job of [claimed, other, patched, existing]) await store.insertJob(job);
        const fresh = makeTestJob();
        const claim = (workerId: string) =>
          store.updateJob(claimed.id, { states: ['QUEUED'], epoch: 0 }, { state: 'ASSIGNED', workerId, epoch: 1 });
        // All issued in the same turn: a store that batches them must keep every guard and every error apart.
        const results = await Promise.allSettled([
          claim('w_a'),
          claim('w_b'),
          store.updateJob(other.id, { states: ['RUNNING'] }, { state: 'SUCCEEDED' }),
          store.updateJob(patched.id, { epoch: 0 }, { cancelRequestedAt: BASE_TIME + 1 }),
          store.updateJob(patched.id, { epoch: 0 }, { errorMessage: 'second' }),
          store.insertJob(fresh),
          store.insertJob({ ...existing, createdAt: BASE_TIME + 5 }),
          store.appendAudit({ eventType: 'first', correlationId: claimed.id, occurredAt: BASE_TIME }),
          store.appendAudit({ eventType: 'second', correlationId: claimed.id, occurredAt: BASE_TIME }),
        ]);
        const values = results.map((result) => (result.status === 'fulfilled' ? result.value : undefined));
        expect(values.slice(0, 2).filter((value) => value !== undefined)).toHaveLength(1);
        expect(await store.getJob(claimed.id)).toEqual(values[0] ?? values[1]);
        expect(results[2]).toEqual({ status: 'fulfilled', value: undefined });
        expect(values[3]).toMatchObject({ cancelRequestedAt: BASE_TIME + 1 });
        expect(values[4]).toMatchObject({ cancelRequestedAt: BASE_TIME + 1, errorMessage: 'second' });
        expect(results[5]?.status).toBe('fulfilled');
        expect(await store.getJob(fresh.id)).toEqual(fresh);
        expect(results[6]?.status).toBe('rejected');
        expect(((results[6] as PromiseRejectedResult).reason as { code?: string }).code).toBe('CONFLICT');
        expect(await store.getJob(existing.id)).toEqual(existing);
        expect((await store.listAudit(claimed.id)).map((event) => event.eventType)).toEqual(['first', 'second']);
      });
    });

    describe('multi-job claims (claimJobs)', () => {
      const absent = () => current?.lacks?.includes('claimJobs') === true;

      it('assigns up to `limit` queued jobs in queue order, with an audit event each, and leaves the rest queued', async () => {
        if (absent()) return expect(store.claimJobs).toBeUndefined();
        const low = makeTestJob({ createdAt: BASE_TIME });
        const urgent = makeTestJob({ createdAt: BASE_TIME + 2, spec: spec({ priority: 5 }) });
        const older = makeTestJob({ createdAt: BASE_TIME + 1, attempt: 2, epoch: 3 });
        const newest = makeTestJob({ createdAt: BASE_TIME + 3 });
        for (const job of [low, urgent, older, newest]) await store.insertJob(job);
        const claimed = await store.claimJobs!({ workerId: 'w_1', labels: {}, limit: 3, now: BASE_TIME + 100 });
        expect(claimed.map((job) => job.id)).toEqual([urgent.id, low.id, older.id]);
        expect(claimed[2]).toEqual({ ...older, state: 'ASSIGNED', workerId: 'w_1', epoch: 4, assignedAt: BASE_TIME + 100 });
        for (const job of claimed) expect(await store.getJob(job.id)).toEqual(job);
        expect((await store.queuedJobs(10)).map((job) => job.id)).toEqual([newest.id]);
        expect(await store.listAudit(older.id)).toEqual([
          { eventType: 'job.assigned', correlationId: older.id, occurredAt: BASE_TIME + 100, details: { workerId: 'w_1', epoch: 4, attempt: 2 } },
        ]);
        expect(await store.listAudit(newest.id)).toEqual([]);
      });

      it('skips jobs backing off at `now` and jobs asking for labels the worker lacks', async () => {
        if (absent()) return expect(store.claimJobs).toBeUndefined();
        const backingOff = makeTestJob({ createdAt: BASE_TIME, notBefore: BASE_TIME + 500 });
        const due = makeTestJob({ createdAt: BASE_TIME + 1, notBefore: BASE_TIME + 100 });
        const gpu = makeTestJob({ createdAt: BASE_TIME + 2, spec: spec({ labels: { gpu: 'yes' } }) });
        const otherGpu = makeTestJob({ createdAt: BASE_TIME + 3, spec: spec({ labels: { gpu: 'no' } }) });
        for (const job of [backingOff, due, gpu, otherGpu]) await store.insertJob(job);
        const claimed = await store.claimJobs!({ workerId: 'w_1', labels: { gpu: 'yes', zone: 'a' }, limit: 10, now: BASE_TIME + 100 });
        expect(claimed.map((job) => job.id)).toEqual([due.id, gpu.id]);
        expect(claimed[0]!.notBefore).toBeUndefined();
        expect((await store.getJob(due.id))!.notBefore).toBeUndefined();
        expect((await store.queuedJobs(10)).map((job) => job.id)).toEqual([backingOff.id, otherGpu.id]);
        expect(await store.claimJobs!({ workerId: 'w_2', labels: {}, limit: 10, now: BASE_TIME + 101 })).toEqual([]);
        const later = await store.claimJobs!({ workerId: 'w_2', labels: {}, limit: 10, now: BASE_TIME + 500 });
        expect(later.map((job) => job.id)).toEqual([backingOff.id]);
      });

      it('claims nothing with limit 0 or from an empty queue', async () => {
        if (absent()) return expect(store.claimJobs).toBeUndefined();
        expect(await store.claimJobs!({ workerId: 'w_1', labels: {}, limit: 5, now: BASE_TIME })).toEqual([]);
        const job = makeTestJob();
        await store.insertJob(job);
        expect(await store.claimJobs!({ workerId: 'w_1', labels: {}, limit: 0, now: BASE_TIME })).toEqual([]);
        expect(await store.getJob(job.id)).toEqual(job);
      });

      it('returns the same jobs to a retried claim (same worker and time) and claims no more', async () => {
        if (absent()) return expect(store.claimJobs).toBeUndefined();
        const jobs = Array.from({ length: 5 }, (_, index) => makeTestJob({ createdAt: BASE_TIME + index }));
        for (const job of jobs) await store.insertJob(job);
        const claim = { workerId: 'w_1', labels: {}, limit: 2, now: BASE_TIME + 100 };
        const first = await store.claimJobs!(claim);
        const retried = await store.claimJobs!(claim);
        expect(retried).toEqual(first);
        expect(first.map((job) => job.id)).toEqual([jobs[0]!.id, jobs[1]!.id]);
        expect(await store.queuedJobs(10)).toHaveLength(3);
        expect(await store.listAudit(jobs[0]!.id)).toHaveLength(1);
        const wider = await store.claimJobs!({ ...claim, limit: 3 });
        expect(wider).toEqual(first);
        const next = await store.claimJobs!({ ...claim, now: BASE_TIME + 101 });
        expect(next.map((job) => job.id)).toEqual([jobs[2]!.id, jobs[3]!.id]);
      });

      it('never gives one job to two of many concurrent claimers', async () => {
        if (absent()) return expect(store.claimJobs).toBeUndefined();
        const jobs = Array.from({ length: 60 }, (_, index) => makeTestJob({ createdAt: BASE_TIME + index }));
        for (const job of jobs) await store.insertJob(job);
        const owners = new Map<string, string[]>();
        let tick = 0;
        const claimer = async (workerId: string): Promise<void> => {
          for (;;) {
            tick += 1;
            const claimed = await store.claimJobs!({ workerId, labels: {}, limit: 3, now: BASE_TIME + 1_000 + tick });
            if (claimed.length === 0 && (await store.queuedJobs(1)).length === 0) return;
            for (const job of claimed) owners.set(job.id, [...(owners.get(job.id) ?? []), workerId]);
          }
        };
        await Promise.all(['w_a', 'w_b', 'w_c', 'w_d', 'w_e', 'w_f'].map(claimer));
        expect(owners.size).toBe(jobs.length);
        for (const job of jobs) {
          const winners = owners.get(job.id)!;
          expect(winners).toHaveLength(1);
          expect(await store.getJob(job.id)).toMatchObject({ state: 'ASSIGNED', epoch: 1, workerId: winners[0] });
          expect(await store.listAudit(job.id)).toHaveLength(1);
        }
      });
    });

    describe('workers and queue in one read (listWorkersAndQueue)', () => {
      it('reads what listWorkers and queuedJobs read', async () => {
        if (current?.lacks?.includes('listWorkersAndQueue')) return expect(store.listWorkersAndQueue).toBeUndefined();
        const workers = [
          makeTestWorker({ state: 'READY', createdAt: BASE_TIME + 1, labels: { os: 'linux' }, runningJobIds: ['job_a'], lastHeartbeat: BASE_TIME + 5, idleSince: BASE_TIME + 6 }),
          makeTestWorker({ state: 'BUSY', createdAt: BASE_TIME + 2, capacity: 2, sessionTokenHash: 'cd'.repeat(32) }),
          makeTestWorker({ state: 'LOST', createdAt: BASE_TIME + 3, endedReason: 'gone' }),
        ];
        for (const worker of workers) await store.insertWorker(worker);
        const jobs = [
          makeTestJob({ createdAt: BASE_TIME + 3 }),
          makeTestJob({
            createdAt: BASE_TIME + 4,
            attempt: 2,
            epoch: 1,
            notBefore: BASE_TIME + 9_000,
            errorMessage: 'retrying\nsecond line',
            spec: spec({ priority: 3, labels: { os: 'linux' }, env: { A: 'ü ✓' }, script: { interpreter: '/bin/sh', content: 'echo "$A"\n' } }),
          }),
          makeTestJob({ createdAt: BASE_TIME + 5, spec: spec({ priority: 3 }) }),
          makeTestJob({ createdAt: BASE_TIME + 6, state: 'RUNNING', workerId: workers[0]!.id, epoch: 1 }),
        ];
        for (const job of jobs) await store.insertJob(job);
        for (const [states, limit] of [[['READY', 'BUSY'], 2], [['LOST'], 10], [[], 10], [['READY'], 0]] as const) {
          expect(await store.listWorkersAndQueue!(states, limit)).toEqual({
            workers: await store.listWorkers({ states }),
            queuedJobs: await store.queuedJobs(limit),
          });
        }
        expect((await store.listWorkersAndQueue!(['READY', 'BUSY'], 2)).queuedJobs.map((job) => job.id)).toEqual([jobs[1]!.id, jobs[2]!.id]);
      });
    });

    describe('workers', () => {
      it('round-trips a worker and returns undefined for an unknown one', async () => {
        const worker = makeTestWorker({
          labels: { os: 'linux', 'with space': 'a b' },
          capacity: 4,
          runningJobIds: ['job_a', 'job_b'],
          lastHeartbeat: BASE_TIME + 10,
          idleSince: BASE_TIME + 11,
          sessionTokenHash: 'ab'.repeat(32),
          endedReason: 'none yet',
          state: 'BUSY',
        });
        await store.insertWorker(worker);
        expect(await store.getWorker(worker.id)).toEqual(worker);
        expect(await store.getWorker('w_missing')).toBeUndefined();
      });

      it('refuses a second worker with the same id (CONFLICT)', async () => {
        const worker = makeTestWorker();
        await store.insertWorker(worker);
        await expectCode(store.insertWorker(worker), 'CONFLICT');
      });

      it('returns snapshots: mutating a returned worker does not change the store', async () => {
        const worker = makeTestWorker({ labels: { os: 'linux' }, runningJobIds: ['job_a'] });
        const expected = structuredClone(worker);
        await store.insertWorker(worker);
        worker.labels.os = 'changed';
        worker.runningJobIds.push('job_b');
        const read = (await store.getWorker(worker.id))!;
        expect(read).toEqual(expected);
        read.runningJobIds.push('job_c');
        read.labels.extra = 'x';
        expect(await store.getWorker(worker.id)).toEqual(expected);
      });

      it('lists all workers or those in the given states, each whole (its session token hash included)', async () => {
        // The engine tells its own workers from those that reconnected to another server by the session token hash
        // a listed worker holds.
        const ready = makeTestWorker({ state: 'READY', createdAt: BASE_TIME + 1, sessionTokenHash: 'ef'.repeat(32), lastHeartbeat: BASE_TIME + 4 });
        const busy = makeTestWorker({ state: 'BUSY', createdAt: BASE_TIME + 2, runningJobIds: ['job_x'], labels: { os: 'linux' } });
        const lost = makeTestWorker({ state: 'LOST', createdAt: BASE_TIME + 3 });
        for (const worker of [ready, busy, lost]) await store.insertWorker(worker);
        const byId = (workers: Worker[]) => [...workers].sort((a, b) => a.id.localeCompare(b.id));
        expect(byId(await store.listWorkers())).toEqual(byId([ready, busy, lost]));
        expect(byId(await store.listWorkers({}))).toEqual(byId([ready, busy, lost]));
        expect(byId(await store.listWorkers({ states: ['READY', 'BUSY'] }))).toEqual(byId([ready, busy]));
        expect(await store.listWorkers({ states: ['TERMINATED'] })).toEqual([]);
      });

      it('updates a worker when the state guard matches, and refuses otherwise', async () => {
        const worker = makeTestWorker({ state: 'CREATING' });
        await store.insertWorker(worker);
        expect(await store.updateWorker(worker.id, { states: ['READY'] }, { state: 'BUSY' })).toBeUndefined();
        expect(await store.updateWorker(worker.id, { states: [] }, { state: 'BUSY' })).toBeUndefined();
        expect(await store.getWorker(worker.id)).toEqual(worker);

        const ready = await store.updateWorker(worker.id, { states: ['CREATING', 'CONNECTING'] }, {
          state: 'READY',
          lastHeartbeat: BASE_TIME + 100,
          idleSince: BASE_TIME + 100,
          capacity: 2,
          labels: { os: 'linux' },
        });
        const expected = { ...worker, state: 'READY', lastHeartbeat: BASE_TIME + 100, idleSince: BASE_TIME + 100, capacity: 2, labels: { os: 'linux' } };
        expect(ready).toEqual(expected);
        expect(await store.getWorker(worker.id)).toEqual(expected);

        const assigned = await store.updateWorker(worker.id, {}, { runningJobIds: ['job_1'], state: 'BUSY', idleSince: undefined });
        expect(assigned?.runningJobIds).toEqual(['job_1']);
        expect(assigned?.idleSince).toBeUndefined();
        expect((await store.getWorker(worker.id))?.idleSince).toBeUndefined();
        expect(await store.updateWorker('w_missing', {}, { state: 'LOST' })).toBeUndefined();
      });

      it('lets exactly one of many concurrent guarded worker transitions win', async () => {
        const worker = makeTestWorker({ state: 'CONNECTING' });
        await store.insertWorker(worker);
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, index) =>
            store.updateWorker(worker.id, { states: ['CREATING', 'CONNECTING'] }, { state: 'READY', lastHeartbeat: BASE_TIME + index }),
          ),
        );
        expect(results.filter((result) => result !== undefined)).toHaveLength(1);
      });
    });

    describe("a worker's running jobs (addRunningJobs, removeRunningJobs)", () => {
      const lacks = (method: 'addRunningJobs' | 'removeRunningJobs') => current?.lacks?.includes(method) === true;

      it('addRunningJobs: adds to a READY worker, BUSY once its capacity is filled, and clears idleSince', async () => {
        if (lacks('addRunningJobs')) return expect(store.addRunningJobs).toBeUndefined();
        const worker = makeTestWorker({ state: 'READY', capacity: 3, runningJobIds: ['job_a'], idleSince: BASE_TIME, lastHeartbeat: BASE_TIME });
        await store.insertWorker(worker);
        const { idleSince: _, ...running } = worker;
        const ready = await store.addRunningJobs!(worker.id, ['job_b']);
        expect(ready).toEqual({ ...running, runningJobIds: ['job_a', 'job_b'] });
        expect(await store.getWorker(worker.id)).toEqual(ready);
        const busy = await store.addRunningJobs!(worker.id, ['job_c']);
        expect(busy).toEqual({ ...running, state: 'BUSY', runningJobIds: ['job_a', 'job_b', 'job_c'] });
        expect(await store.getWorker(worker.id)).toEqual(busy);
        expect(await store.addRunningJobs!('w_missing', ['job_a'])).toBeUndefined();
      });

      it('addRunningJobs: adds to a BUSY worker (its list may still hold jobs whose results are being recorded), past its capacity too', async () => {
        if (lacks('addRunningJobs')) return expect(store.addRunningJobs).toBeUndefined();
        const worker = makeTestWorker({ state: 'BUSY', capacity: 2, runningJobIds: ['job_a', 'job_b'], lastHeartbeat: BASE_TIME });
        await store.insertWorker(worker);
        const more = await store.addRunningJobs!(worker.id, ['job_c']);
        expect(more).toEqual({ ...worker, state: 'BUSY', runningJobIds: ['job_a', 'job_b', 'job_c'] });
        expect(await store.getWorker(worker.id)).toEqual(more);
        // Its results recorded, the jobs left are below its capacity again: READY.
        if (!lacks('removeRunningJobs')) {
          expect(await store.removeRunningJobs!(worker.id, ['job_a', 'job_b'], BASE_TIME + 1)).toMatchObject({ state: 'READY', runningJobIds: ['job_c'] });
        }
      });

      it('addRunningJobs: adds nothing to a worker neither READY nor BUSY, unless it lists every id already (a retried call)', async () => {
        if (lacks('addRunningJobs')) return expect(store.addRunningJobs).toBeUndefined();
        const ready = makeTestWorker({ state: 'READY', capacity: 4, runningJobIds: ['job_a'] });
        await store.insertWorker(ready);
        expect(await store.addRunningJobs!(ready.id, ['job_a', 'job_b', 'job_b'])).toMatchObject({ state: 'READY', runningJobIds: ['job_a', 'job_b'] });
        for (const state of ['DRAINING', 'TERMINATING', 'LOST', 'CONNECTING'] as const) {
          const worker = makeTestWorker({ state, capacity: 4, runningJobIds: ['job_a', 'job_b'], idleSince: BASE_TIME });
          await store.insertWorker(worker);
          expect(await store.addRunningJobs!(worker.id, ['job_b', 'job_c'])).toBeUndefined();
          expect(await store.addRunningJobs!(worker.id, ['job_b', 'job_a'])).toEqual(worker);
          expect(await store.getWorker(worker.id)).toEqual(worker);
        }
        // A READY worker that lists every id already is left as it is too (its state and idleSince are not recomputed).
        const listed = makeTestWorker({ state: 'READY', capacity: 2, runningJobIds: ['job_a', 'job_b'], idleSince: BASE_TIME });
        await store.insertWorker(listed);
        expect(await store.addRunningJobs!(listed.id, ['job_b', 'job_a'])).toEqual(listed);
        expect(await store.getWorker(listed.id)).toEqual(listed);
      });

      it('removeRunningJobs: frees the slots, READY below capacity, and sets idleSince when no job is left', async () => {
        if (lacks('removeRunningJobs')) return expect(store.removeRunningJobs).toBeUndefined();
        const worker = makeTestWorker({ state: 'BUSY', capacity: 2, runningJobIds: ['job_a', 'job_b'], lastHeartbeat: BASE_TIME });
        await store.insertWorker(worker);
        const one = await store.removeRunningJobs!(worker.id, ['job_a'], BASE_TIME + 5);
        expect(one).toEqual({ ...worker, state: 'READY', runningJobIds: ['job_b'] });
        expect(await store.getWorker(worker.id)).toEqual(one);
        const idle = await store.removeRunningJobs!(worker.id, ['job_b', 'job_x'], BASE_TIME + 6);
        expect(idle).toEqual({ ...worker, state: 'READY', runningJobIds: [], idleSince: BASE_TIME + 6 });
        expect(await store.getWorker(worker.id)).toEqual(idle);
        expect(await store.removeRunningJobs!('w_missing', ['job_a'], BASE_TIME)).toBeUndefined();
      });

      it('removeRunningJobs: keeps a BUSY worker at capacity BUSY, and the state of a worker neither READY nor BUSY', async () => {
        if (lacks('removeRunningJobs')) return expect(store.removeRunningJobs).toBeUndefined();
        const full = makeTestWorker({ state: 'BUSY', capacity: 1, runningJobIds: ['job_a', 'job_b'] });
        const draining = makeTestWorker({ state: 'DRAINING', capacity: 2, runningJobIds: ['job_a', 'job_b'] });
        for (const worker of [full, draining]) await store.insertWorker(worker);
        expect(await store.removeRunningJobs!(full.id, ['job_a'], BASE_TIME)).toEqual({ ...full, runningJobIds: ['job_b'] });
        expect(await store.removeRunningJobs!(draining.id, ['job_b'], BASE_TIME)).toEqual({ ...draining, runningJobIds: ['job_a'] });
        expect(await store.removeRunningJobs!(draining.id, ['job_a'], BASE_TIME + 1)).toEqual({ ...draining, runningJobIds: [], idleSince: BASE_TIME + 1 });
      });

      it('loses no change among many concurrent adds and removes on one worker', async () => {
        if (lacks('addRunningJobs') || lacks('removeRunningJobs')) return;
        const worker = makeTestWorker({ state: 'READY', capacity: 100, runningJobIds: Array.from({ length: 20 }, (_, index) => `job_old_${index}`) });
        await store.insertWorker(worker);
        await Promise.all([
          ...Array.from({ length: 20 }, (_, index) => store.addRunningJobs!(worker.id, [`job_new_${index}`])),
          ...Array.from({ length: 20 }, (_, index) => store.removeRunningJobs!(worker.id, [`job_old_${index}`], BASE_TIME)),
        ]);
        const after = (await store.getWorker(worker.id))!;
        expect([...after.runningJobIds].sort()).toEqual(Array.from({ length: 20 }, (_, index) => `job_new_${index}`).sort());
        expect(after.state).toBe('READY');
      });
    });

    describe('logs', () => {
      // The batch methods, or the per-line ones the engine falls back to when a store lacks them.
      const appendBatch = (jobId: string, batch: NewLogLineBatch) =>
        store.appendLogBatch ? store.appendLogBatch(jobId, batch) : store.appendLogs(jobId, unpackLogLineBatch({ ...batch, firstSeq: 1 }));
      const readBatches = async (jobId: string, fromSeq: number, maxLines: number): Promise<LogLineBatch[]> => {
        if (store.readLogBatches) return store.readLogBatches(jobId, fromSeq, maxLines);
        const read = await store.readLogs(jobId, fromSeq, maxLines);
        return read.length === 0 ? [] : [{ ...packLogLineBatch(read), firstSeq: read[0]!.seq }];
      };

      it('getJobAndLogCount: the job as getJob reads it and its stored line count, in one read; undefined for an unknown id', async () => {
        if (current?.lacks?.includes('getJobAndLogCount')) return expect(store.getJobAndLogCount).toBeUndefined();
        expect(typeof store.getJobAndLogCount).toBe('function');
        const job = makeTestJob();
        await store.insertJob(job);
        expect(await store.getJobAndLogCount!(job.id)).toEqual({ job, logCount: 0 });
        await store.appendLogs(job.id, lines(3, 'a'));
        expect(await store.getJobAndLogCount!(job.id)).toEqual({ job: await store.getJob(job.id), logCount: 3 });
        expect(await store.getJobAndLogCount!('job_missing')).toBeUndefined();
      });

      it('numbers lines from 1, contiguously across appends, and returns the last seq', async () => {
        const job = makeTestJob();
        await store.insertJob(job);
        expect(await store.appendLogs(job.id, lines(3, 'a'))).toBe(3);
        expect(await store.appendLogs(job.id, lines(1, 'b'))).toBe(4);
        expect(await store.appendLogs(job.id, lines(5, 'c'))).toBe(9);
        const read = await store.readLogs(job.id, 1, 100);
        expect(read.map((line) => line.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
        expect(read.map((line) => line.text)).toEqual(['a 1', 'a 2', 'a 3', 'b 1', 'c 1', 'c 2', 'c 3', 'c 4', 'c 5']);
        expect(read[0]).toEqual({ seq: 1, timestamp: BASE_TIME, stream: 'stderr', text: 'a 1' });
        expect(read[1]).toEqual({ seq: 2, timestamp: BASE_TIME + 1, stream: 'stdout', text: 'a 2' });
      });

      it('agrees between batch and per-line appends and reads (the batch methods, or the per-line ones the engine falls back to)', async () => {
        const job = makeTestJob();
        await store.insertJob(job);
        const mixed: NewLogLine[] = [
          { timestamp: BASE_TIME + 10, stream: 'stderr', text: 'ünï 🚀' },
          { timestamp: BASE_TIME + 9, stream: 'system', text: '' },
          { timestamp: BASE_TIME + 12, stream: 'stdout', text: 'tail' },
        ];
        expect(await appendBatch(job.id, packLogLineBatch(lines(3, 'a')))).toBe(3);
        expect(await store.appendLogs(job.id, lines(2, 'b'))).toBe(5);
        expect(await appendBatch(job.id, packLogLineBatch(mixed))).toBe(8);
        expect(await appendBatch(job.id, packLogLineBatch([]))).toBe(8);
        const expected = [...lines(3, 'a'), ...lines(2, 'b'), ...mixed].map((line, index) => ({ seq: index + 1, ...line }));
        expect(await store.readLogs(job.id, 1, 100)).toEqual(expected);
        const all = await readBatches(job.id, 1, 100);
        expect(all.flatMap(unpackLogLineBatch)).toEqual(expected);
        const middle = await readBatches(job.id, 5, 3);
        expect(middle[0]?.firstSeq).toBe(5);
        expect(middle.flatMap(unpackLogLineBatch)).toEqual(expected.slice(4, 7));
        expect((await readBatches(job.id, 0, 2)).flatMap(unpackLogLineBatch)).toEqual(expected.slice(0, 2));
        expect(await readBatches(job.id, 9, 10)).toEqual([]);
        expect(await readBatches(job.id, 1, 0)).toEqual([]);
        expect(await readBatches('job_missing', 1, 10)).toEqual([]);
      });

      it('keeps batch appends to several jobs made at once apart, with any text (newlines, control characters)', async () => {
        const [first, second] = [makeTestJob(), makeTestJob()];
        await store.insertJob(first);
        await store.insertJob(second);
        const control = Array.from({ length: 31 }, (_, code) => String.fromCharCode(code + 1)).join('');
        const odd: NewLogLine[] = [
          { timestamp: BASE_TIME + 1, stream: 'stdout', text: 'two\nlines' },
          { timestamp: BASE_TIME + 2, stream: 'stdout', text: `every control character: ${control}` },
          { timestamp: BASE_TIME + 3, stream: 'stderr', text: '' },
        ];
        const lasts = await Promise.all([
          appendBatch(first.id, packLogLineBatch(lines(2, 'first'))),
          appendBatch(second.id, packLogLineBatch(odd)),
          appendBatch(first.id, packLogLineBatch([{ timestamp: BASE_TIME + 5, stream: 'system', text: 'last' }])),
          appendBatch(second.id, packLogLineBatch(lines(1, 'after'))),
        ]);
        expect(lasts).toEqual([2, 3, 3, 4]);
        const firstLines = [...lines(2, 'first'), { timestamp: BASE_TIME + 5, stream: 'system', text: 'last' }];
        const secondLines = [...odd, ...lines(1, 'after')];
        for (const [job, written] of [[first, firstLines], [second, secondLines]] as const) {
          const expected = written.map((line, index) => ({ seq: index + 1, ...line }));
          expect(await store.readLogs(job.id, 1, 10)).toEqual(expected);
          expect((await readBatches(job.id, 1, 10)).flatMap(unpackLogLineBatch)).toEqual(expected);
        }
      });

      it('keeps the text of every stream as written', async () => {
        const job = makeTestJob();
        await store.insertJob(job);
        const written: NewLogLine[] = [
          { timestamp: BASE_TIME, stream: 'system', text: 'starting' },
          { timestamp: BASE_TIME + 1, stream: 'stdout', text: '' },
          { timestamp: BASE_TIME + 2, stream: 'stderr', text: "quotes ' \" \\ tabs\t and ünïcödé ✓ 🚀" },
          { timestamp: BASE_TIME + 3, stream: 'stdout', text: 'x'.repeat(10_000) },
        ];
        await store.appendLogs(job.id, written);
        expect(await store.readLogs(job.id, 1, 10)).toEqual(written.map((line, index) => ({ seq: index + 1, ...line })));
      });

      it('returns the current last seq for an empty batch', async () => {
        const job = makeTestJob();
        await store.insertJob(job);
        expect(await store.appendLogs(job.id, [])).toBe(0);
        await store.appendLogs(job.id, lines(2));
        expect(await store.appendLogs(job.id, [])).toBe(2);
        expect(await store.readLogs(job.id, 1, 10)).toHaveLength(2);
      });

      it('reads from a seq with a limit', async () => {
        const job = makeTestJob();
        await store.insertJob(job);
        await store.appendLogs(job.id, lines(10));
        expect((await store.readLogs(job.id, 4, 3)).map((line) => line.seq)).toEqual([4, 5, 6]);
        expect((await store.readLogs(job.id, 9, 100)).map((line) => line.seq)).toEqual([9, 10]);
        expect(await store.readLogs(job.id, 11, 100)).toEqual([]);
        expect(await store.readLogs(job.id, 1, 0)).toEqual([]);
        expect((await store.readLogs(job.id, 0, 2)).map((line) => line.seq)).toEqual([1, 2]);
        expect(await store.readLogs('job_missing', 1, 10)).toEqual([]);
      });

      it('keeps the logs of different jobs apart', async () => {
        const first = makeTestJob();
        const second = makeTestJob();
        await store.insertJob(first);
        await store.insertJob(second);
        await store.appendLogs(first.id, lines(2, 'first'));
        expect(await store.appendLogs(second.id, lines(3, 'second'))).toBe(3);
        expect((await store.readLogs(first.id, 1, 10)).map((line) => line.text)).toEqual(['first 1', 'first 2']);
        expect((await store.readLogs(second.id, 1, 10)).map((line) => line.seq)).toEqual([1, 2, 3]);
      });

      it('keeps appends to several jobs made at once apart, each returning its own last seq', async () => {
        const [first, second] = [makeTestJob(), makeTestJob()];
        await store.insertJob(first);
        await store.insertJob(second);
        const lasts = await Promise.all([
          store.appendLogs(first.id, lines(2, 'first')),
          store.appendLogs(second.id, lines(3, 'second')),
          store.appendLogs(first.id, lines(1, 'again')),
        ]);
        expect(lasts).toEqual([2, 3, 3]);
        expect((await store.readLogs(first.id, 1, 10)).map((line) => line.text)).toEqual(['first 1', 'first 2', 'again 1']);
        expect((await store.readLogs(second.id, 1, 10)).map((line) => line.seq)).toEqual([1, 2, 3]);
      });

      it('assigns contiguous seqs to concurrent appends to one job, each batch in order', async () => {
        const job = makeTestJob();
        await store.insertJob(job);
        const batches = Array.from({ length: 20 }, (_, batch) =>
          Array.from({ length: 1 + (batch % 4) }, (_, index): NewLogLine => ({
            timestamp: BASE_TIME + batch,
            stream: 'stdout',
            text: `batch ${batch} line ${index}`,
          })),
        );
        const total = batches.reduce((sum, batch) => sum + batch.length, 0);
        const lasts = await Promise.all(batches.map((batch) => store.appendLogs(job.id, batch)));
        expect(new Set(lasts).size).toBe(batches.length);
        expect(Math.max(...lasts)).toBe(total);
        const read = await store.readLogs(job.id, 1, total + 10);
        expect(read.map((line) => line.seq)).toEqual(Array.from({ length: total }, (_, index) => index + 1));
        batches.forEach((batch, index) => {
          const last = lasts[index]!;
          const stored = read.slice(last - batch.length, last).map((line) => line.text);
          expect(stored).toEqual(batch.map((line) => line.text));
        });
      });
    });

    describe('tokens', () => {
      it('consumes a token once', async () => {
        const token = { hash: 'a1'.repeat(32), workerId: 'w_1', expiresAt: BASE_TIME + 300_000 };
        await store.saveToken(token);
        expect(await store.consumeToken(token.hash)).toEqual(token);
        expect(await store.consumeToken(token.hash)).toBeUndefined();
        expect(await store.consumeToken('unknown')).toBeUndefined();
      });

      it('keeps tokens apart', async () => {
        const first = { hash: 'b1'.repeat(32), workerId: 'w_1', expiresAt: BASE_TIME + 1 };
        const second = { hash: 'b2'.repeat(32), workerId: 'w_2', expiresAt: BASE_TIME + 2 };
        await store.saveToken(first);
        await store.saveToken(second);
        expect(await store.consumeToken(second.hash)).toEqual(second);
        expect(await store.consumeToken(first.hash)).toEqual(first);
      });

      it('gives a token to exactly one of many concurrent consumers', async () => {
        const token = { hash: 'c3'.repeat(32), workerId: 'w_1', expiresAt: BASE_TIME + 300_000 };
        await store.saveToken(token);
        const results = await Promise.all(Array.from({ length: 30 }, () => store.consumeToken(token.hash)));
        const winners = results.filter((result) => result !== undefined);
        expect(winners).toEqual([token]);
      });
    });

    describe('audit', () => {
      it('lists the events of one correlation id in order', async () => {
        const events = [
          { eventType: 'job.queued', correlationId: 'job_a', occurredAt: BASE_TIME, details: { name: 'a' } },
          { eventType: 'worker.provisioned', correlationId: 'w_1', occurredAt: BASE_TIME + 1, details: { provider: 'process' } },
          { eventType: 'job.assigned', correlationId: 'job_a', occurredAt: BASE_TIME + 2, details: { workerId: 'w_1', epoch: 1, nested: { ok: true, list: [1, 'two', null] } } },
          { eventType: 'job.started', correlationId: 'job_a', occurredAt: BASE_TIME + 2, details: {} },
          { eventType: 'job.finished', correlationId: 'job_a', occurredAt: BASE_TIME + 3, details: { exitCode: null } },
        ];
        for (const event of events) await store.appendAudit(event);
        expect(await store.listAudit('job_a')).toEqual(events.filter((event) => event.correlationId === 'job_a'));
        expect(await store.listAudit('w_1')).toEqual([events[1]]);
        expect(await store.listAudit('nobody')).toEqual([]);
      });

      it('stores events without details', async () => {
        await store.appendAudit({ eventType: 'job.queued', correlationId: 'job_b', occurredAt: BASE_TIME });
        const listed = await store.listAudit('job_b');
        expect(listed).toHaveLength(1);
        expect(listed[0]).toMatchObject({ eventType: 'job.queued', correlationId: 'job_b', occurredAt: BASE_TIME });
      });
    });

    describe('audit written with the change it records', () => {
      const event = (eventType: string, correlationId: string, details?: Record<string, unknown>) => ({
        eventType,
        correlationId,
        occurredAt: BASE_TIME,
        ...(details ? { details } : {}),
      });

      it('insertJob with an audit event stores both; a refused insert stores neither', async () => {
        const job = makeTestJob();
        await store.insertJob(job, event('job.queued', job.id, { name: job.spec.name }));
        expect(await store.getJob(job.id)).toBeDefined();
        expect(await store.listAudit(job.id)).toEqual([event('job.queued', job.id, { name: job.spec.name })]);
        await expect(store.insertJob(job, event('job.queued', job.id))).rejects.toMatchObject({ code: 'CONFLICT' });
        expect(await store.listAudit(job.id)).toHaveLength(1);
      });

      it('updateJob records its audit event only when the guard matched, once per applied change', async () => {
        const job = makeTestJob();
        await store.insertJob(job);
        const patch = { state: 'ASSIGNED' as const, workerId: 'w_1', epoch: 1 };
        // Concurrent claims of one job: exactly one applies, exactly one event is recorded.
        const results = await Promise.all(
          ['w_1', 'w_2', 'w_3'].map((workerId) =>
            store.updateJob(job.id, { states: ['QUEUED'], epoch: 0 }, { ...patch, workerId }, event('job.assigned', job.id, { workerId })),
          ),
        );
        const winners = results.filter((result) => result !== undefined);
        expect(winners).toHaveLength(1);
        expect(await store.listAudit(job.id)).toEqual([event('job.assigned', job.id, { workerId: winners[0]!.workerId })]);
        // No such job: nothing recorded.
        expect(await store.updateJob('job_missing', {}, { state: 'RUNNING' }, event('job.started', 'job_missing'))).toBeUndefined();
        expect(await store.listAudit('job_missing')).toEqual([]);
        // Updates with and without an event in the same turn each keep their own outcome.
        const other = makeTestJob();
        await store.insertJob(other);
        const [started, plain] = await Promise.all([
          store.updateJob(job.id, { states: ['ASSIGNED'], epoch: 1 }, { state: 'RUNNING' }, event('job.started', job.id)),
          store.updateJob(other.id, { states: ['QUEUED'] }, { errorMessage: 'plain' }),
        ]);
        expect(started?.state).toBe('RUNNING');
        expect(plain).toBeDefined();
        expect((await store.listAudit(job.id)).map((recorded) => recorded.eventType)).toEqual(['job.assigned', 'job.started']);
        expect(await store.listAudit(other.id)).toEqual([]);
      });

      it('updateJob records several events, in order, with one change (a short job started and finished), and none when refused', async () => {
        const jobs = [makeTestJob({ state: 'ASSIGNED', epoch: 1, workerId: 'w_1' }), makeTestJob({ state: 'ASSIGNED', epoch: 1, workerId: 'w_1' })];
        for (const job of jobs) await store.insertJob(job);
        const finish = (id: string, epoch: number) =>
          store.updateJob(id, { states: ['ASSIGNED'], epoch }, { state: 'SUCCEEDED', startedAt: BASE_TIME, completedAt: BASE_TIME + 1 }, [
            event('job.started', id, { workerId: 'w_1' }),
            event('job.finished', id, { exitCode: 0 }),
          ]);
        // Made in one turn (a batched store writes them in one statement): each job gets its own two events.
        const [first, second, stale] = await Promise.all([finish(jobs[0]!.id, 1), finish(jobs[1]!.id, 1), finish('job_missing', 1)]);
        expect(first?.state).toBe('SUCCEEDED');
        expect(second?.state).toBe('SUCCEEDED');
        expect(stale).toBeUndefined();
        for (const job of jobs) {
          expect(await store.listAudit(job.id)).toEqual([event('job.started', job.id, { workerId: 'w_1' }), event('job.finished', job.id, { exitCode: 0 })]);
        }
        expect(await finish(jobs[0]!.id, 1)).toBeUndefined();
        expect(await store.listAudit(jobs[0]!.id)).toHaveLength(2);
        expect(await store.listAudit('job_missing')).toEqual([]);
      });

      it('reads back the events of two attempts exactly as given, in order, whether or not they match the job (and after retention)', async () => {
        const at = (offset: number) => BASE_TIME + offset;
        const lifecycle = (eventType: string, id: string, occurredAt: number, details: Record<string, unknown>) => ({ eventType, correlationId: id, occurredAt, details });
        const job = makeTestJob({ spec: spec({ name: 'twice', maxAttempts: 2 }), createdAt: at(0) });
        const given = [lifecycle('job.queued', job.id, at(0), { name: 'twice' })];
        await store.insertJob(job, given[0]);
        // First attempt: claimed (the store records job.assigned), started, then re-queued.
        const assign = async (workerId: string, now: number, epoch: number, attempt: number) => {
          const event = lifecycle('job.assigned', job.id, now, { workerId, epoch, attempt });
          if (store.claimJobs) {
            expect((await store.claimJobs({ workerId, labels: {}, limit: 1, now })).map((claimed) => claimed.id)).toEqual([job.id]);
          } else {
            const patch = { state: 'ASSIGNED' as const, workerId, epoch, assignedAt: now, notBefore: undefined };
            expect(await store.updateJob(job.id, { states: ['QUEUED'], epoch: epoch - 1 }, patch, event)).toBeDefined();
          }
          given.push(event);
        };
        await assign('w_1', at(1), 1, 1);
        given.push(lifecycle('job.started', job.id, at(1), { workerId: 'w_1', epoch: 1 }));
        expect(await store.updateJob(job.id, { states: ['ASSIGNED'], epoch: 1 }, { state: 'RUNNING', startedAt: at(1) }, given.at(-1))).toBeDefined();
        given.push(lifecycle('job.requeued', job.id, at(2), { attempt: 2, reason: 'worker lost' }));
        const requeue = { state: 'QUEUED' as const, attempt: 2, workerId: undefined, assignedAt: undefined, startedAt: undefined, notBefore: at(2) };
        expect(await store.updateJob(job.id, { states: ['RUNNING'], epoch: 1 }, requeue, given.at(-1))).toBeDefined();
        expect(await store.listAudit(job.id)).toEqual(given);
        // Second attempt, started and finished by one change.
        await assign('w_2', at(3), 2, 2);
        const finished = [
          lifecycle('job.started', job.id, at(3), { workerId: 'w_2', epoch: 2 }),
          lifecycle('job.finished', job.id, at(4), { state: 'SUCCEEDED', exitCode: 0 }),
        ];
        given.push(...finished);
        const done = await store.updateJob(job.id, { states: ['ASSIGNED'], epoch: 2 }, { state: 'SUCCEEDED', startedAt: at(3), completedAt: at(4), exitCode: 0 }, finished);
        expect(done?.state).toBe('SUCCEEDED');
        expect(await store.listAudit(job.id)).toEqual(given);

        // Events that do not match the job (name, worker, time, shape), and another event in the same millisecond.
        const other = makeTestJob({ createdAt: at(0) });
        const odd = [
          lifecycle('job.queued', other.id, at(0), { name: 'not its name' }),
          { eventType: 'job.noted', correlationId: other.id, occurredAt: at(0) },
          lifecycle('job.assigned', other.id, at(1), { workerId: 'w_1', epoch: 1, attempt: 1, extra: true }),
          lifecycle('job.started', other.id, at(2), { workerId: 'w_9', epoch: 1 }),
          lifecycle('job.finished', other.id, at(4), { state: 'FAILED', exitCode: 3 }),
        ];
        await store.insertJob(other, odd[0]);
        expect(await store.updateJob(other.id, { states: ['QUEUED'] }, { errorMessage: 'noted' }, odd[1])).toBeDefined();
        const assigned = { state: 'ASSIGNED' as const, workerId: 'w_1', epoch: 1, assignedAt: at(1) };
        expect(await store.updateJob(other.id, { states: ['QUEUED'], epoch: 0 }, assigned, odd[2])).toBeDefined();
        expect(await store.updateJob(other.id, { states: ['ASSIGNED'], epoch: 1 }, { state: 'RUNNING', startedAt: at(2) }, odd[3])).toBeDefined();
        // Finished at 3, recorded at 4: the event is kept as given.
        expect(await store.updateJob(other.id, { states: ['RUNNING'], epoch: 1 }, { state: 'FAILED', completedAt: at(3), exitCode: 3 }, odd[4])).toBeDefined();
        expect(await store.listAudit(other.id)).toEqual(odd);
        // A job whose derived events share a millisecond with an event written later keeps the order they were given in.
        const third = makeTestJob({ createdAt: at(0) });
        const tied = [lifecycle('job.queued', third.id, at(0), { name: third.spec.name }), { eventType: 'job.noted', correlationId: third.id, occurredAt: at(0), details: { n: 1 } }];
        await store.insertJob(third, tied[0]);
        await store.appendAudit(tied[1]!);
        expect(await store.listAudit(third.id)).toEqual(tied);

        if (!store.deleteFinishedJobs) return;
        expect(await store.deleteFinishedJobs(at(10), 10)).toBe(2);
        expect(await store.getJob(job.id)).toBeUndefined();
        expect(await store.listAudit(job.id)).toEqual(given);
        expect(await store.listAudit(other.id)).toEqual(odd);
      });
    });

    describe('retention (deleteFinishedJobs)', () => {
      const FINISHED = ['SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT'] as const;

      it('deletes finished jobs completed before the cutoff, the earliest created first, at most `limit`, with their lines', async () => {
        if (current?.lacks?.includes('deleteFinishedJobs')) return expect(store.deleteFinishedJobs).toBeUndefined();
        expect(typeof store.deleteFinishedJobs).toBe('function');
        // Created in one order and completed in the other: the earliest created go first, not the earliest completed.
        const old = FINISHED.map((state, index) =>
          makeTestJob({ state, createdAt: BASE_TIME - 10 + index, completedAt: BASE_TIME + FINISHED.length - index, startedAt: BASE_TIME, epoch: 1 }),
        );
        const recent = makeTestJob({ state: 'SUCCEEDED', completedAt: BASE_TIME + 10_000, epoch: 1 });
        const queued = makeTestJob();
        const running = makeTestJob({ state: 'RUNNING', epoch: 1, workerId: 'w_1', startedAt: BASE_TIME });
        for (const job of [...old, recent, queued, running]) {
          await store.insertJob(job);
          await store.appendLogs(job.id, lines(3));
        }
        await store.appendAudit({ eventType: 'job.finished', correlationId: old[0]!.id, occurredAt: BASE_TIME });

        // Bounded: the two oldest go first.
        expect(await store.deleteFinishedJobs!(BASE_TIME + 5_000, 2)).toBe(2);
        expect(await store.getJob(old[0]!.id)).toBeUndefined();
        expect(await store.getJob(old[1]!.id)).toBeUndefined();
        expect(await store.getJob(old[2]!.id)).toBeDefined();
        expect(await store.readLogs(old[0]!.id, 1, 10)).toEqual([]);

        expect(await store.deleteFinishedJobs!(BASE_TIME + 5_000, 100)).toBe(2);
        expect(await store.deleteFinishedJobs!(BASE_TIME + 5_000, 100)).toBe(0);
        for (const job of old) expect(await store.getJob(job.id)).toBeUndefined();
        // Newer finished jobs and unfinished jobs stay, lines included; audit events stay.
        for (const job of [recent, queued, running]) {
          expect(await store.getJob(job.id)).toBeDefined();
          expect(await store.readLogs(job.id, 1, 10)).toHaveLength(3);
        }
        expect(await store.queuedJobs(10)).toEqual([queued]);
        expect(await store.listAudit(old[0]!.id)).toHaveLength(1);
      });
    });

    describe('job change hints (onJobChanged)', () => {
      it('calls the listener with the id of a job whose state changed', async () => {
        if (current?.lacks?.includes('onJobChanged')) return expect(store.onJobChanged).toBeUndefined();
        expect(typeof store.onJobChanged).toBe('function');
        const heard = new Set<string>();
        const unsubscribe = store.onJobChanged!((jobId) => jobId !== undefined && heard.add(jobId));
        try {
          const job = makeTestJob();
          await store.insertJob(job);
          const deadline = Date.now() + 10_000;
          // A subscription may take a moment to be live (a LISTEN connection): change the state until heard.
          let epoch = 0;
          while (!heard.has(job.id) && Date.now() < deadline) {
            const state = epoch % 2 === 0 ? 'ASSIGNED' : 'QUEUED';
            expect(await store.updateJob(job.id, { epoch }, { state, epoch: epoch + 1 })).toBeDefined();
            epoch += 1;
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
          expect(heard.has(job.id)).toBe(true);
        } finally {
          unsubscribe();
        }
      });
    });

    describe('close', () => {
      it('is idempotent and refuses writes afterwards (CLOSED)', async () => {
        await store.close();
        await store.close();
        await expectCode(store.insertJob(makeTestJob()), 'CLOSED');
      });
    });
  });
}
