import { afterEach, describe, expect, it } from 'vitest';
import type { Job } from '../src/domain/job';
import type { JobController } from '../src/engine/job-controller';
import { MemoryStore } from '../src/store/memory-store';
import { exited, JobReadCountingStore, startInProcessEngine, until } from './in-process-worker';

let controller: JobController | undefined;

afterEach(async () => {
  await controller?.stop();
  controller = undefined;
});

/** An engine whose one in-process worker hands each run to the test; its clock is the test's. */
async function engine(clock: { now: number }) {
  const started = await startInProcessEngine({ store: new MemoryStore(), clock: { now: () => clock.now }, config: { retryBackoffMs: 1 } });
  controller = started.controller;
  return started;
}

describe('a short job whose start travels with its result (jobFinished with started)', () => {
  it('records start and end in one write: startedAt is the end less the duration, and the audit reads queued, assigned, started, finished', async () => {
    const clock = { now: 1_000_000 };
    const { store, runs, controller: engineUnderTest } = await engine(clock);
    const queued = await engineUnderTest.queue({ name: 'short', command: 'true' });
    const run = await until(() => runs[0]);
    clock.now += 50;
    expect(await engineUnderTest.jobFinished(run.workerId, queued.id, run.job.epoch, exited(0, 20), 0, true)).toBe(true);
    const done = (await store.getJob(queued.id))!;
    expect(done).toMatchObject<Partial<Job>>({ state: 'SUCCEEDED', completedAt: 1_000_050, startedAt: 1_000_030 });
    const audit = await store.listAudit(queued.id);
    expect(audit.map((event) => event.eventType)).toEqual(['job.queued', 'job.assigned', 'job.started', 'job.finished']);
    expect(audit[2]!.occurredAt).toBe(1_000_030);
  });

  it('never dates the start before the assignment nor after the end', async () => {
    const clock = { now: 2_000_000 };
    const { store, runs, controller: engineUnderTest } = await engine(clock);
    const queued = await engineUnderTest.queue({ name: 'short', command: 'true' });
    const run = await until(() => runs[0]);
    clock.now += 5;
    // The worker measured more than the time since the assignment (another clock): the start is the assignment.
    await engineUnderTest.jobFinished(run.workerId, queued.id, run.job.epoch, exited(0, 10_000), 0, true);
    const done = (await store.getJob(queued.id))!;
    expect(done.startedAt).toBe(done.assignedAt);
    expect(done.startedAt!).toBeLessThanOrEqual(done.completedAt!);
  });

  it('never dates the start after the end, when the end is recorded before the assignment (a clock that stepped back)', async () => {
    const clock = { now: 2_500_000 };
    const { store, runs, controller: engineUnderTest } = await engine(clock);
    const queued = await engineUnderTest.queue({ name: 'short', command: 'true' });
    const run = await until(() => runs[0]);
    clock.now -= 50;
    await engineUnderTest.jobFinished(run.workerId, queued.id, run.job.epoch, exited(0, 1), 0, true);
    const done = (await store.getJob(queued.id))!;
    expect(done.completedAt).toBe(2_499_950);
    expect(done.startedAt).toBe(done.completedAt);
  });

  it('a result that re-queues for a retried exit code still records the start first', async () => {
    const clock = { now: 3_000_000 };
    const { store, runs, controller: engineUnderTest } = await engine(clock);
    const queued = await engineUnderTest.queue({ name: 'retried', command: 'true', maxAttempts: 2, retryOnExitCodes: [3] });
    const run = await until(() => runs[0]);
    await engineUnderTest.jobFinished(run.workerId, queued.id, run.job.epoch, exited(3, 1), 0, true);
    expect((await store.getJob(queued.id))!).toMatchObject<Partial<Job>>({ state: 'QUEUED', attempt: 2 });
    expect((await store.listAudit(queued.id)).map((event) => event.eventType)).toEqual(['job.queued', 'job.assigned', 'job.started', 'job.requeued']);
  });

  it('a result that re-queues dates the start it records as one that ends the job does: the end less the duration', async () => {
    const clock = { now: 4_000_000 };
    const { store, runs, controller: engineUnderTest } = await engine(clock);
    const queued = await engineUnderTest.queue({ name: 'retried', command: 'true', maxAttempts: 2, retryOnExitCodes: [3] });
    const run = await until(() => runs[0]);
    clock.now += 50;
    await engineUnderTest.jobFinished(run.workerId, queued.id, run.job.epoch, exited(3, 20), 0, true);
    const started = (await store.listAudit(queued.id)).find((event) => event.eventType === 'job.started');
    expect(started?.occurredAt).toBe(4_000_030);
  });
});

describe('the cost of a retried short job\'s result', () => {
  it('reads the job once: the start it records first returns the job as written, for the re-queue', async () => {
    const started = await startInProcessEngine({ store: new JobReadCountingStore(), config: { retryBackoffMs: 1 } });
    controller = started.controller;
    const queued = await controller.queue({ name: 'retried', command: 'true', maxAttempts: 2, retryOnExitCodes: [3] });
    const run = await until(() => started.runs[0]);
    started.store.jobReads = 0;
    await controller.jobFinished(run.workerId, queued.id, run.job.epoch, exited(3, 1), 0, true);
    expect(started.store.jobReads).toBe(1);
    expect(await started.store.getJob(queued.id)).toMatchObject<Partial<Job>>({ state: 'QUEUED', attempt: 2 });
  });
});
