import { afterEach, describe, expect, it } from 'vitest';
import type { JobController } from '../src/engine/job-controller';
import { MemoryStore } from '../src/store/memory-store';
import { exited, startInProcessEngine, until } from './in-process-worker';

let controller: JobController | undefined;

afterEach(async () => {
  await controller?.stop();
  controller = undefined;
});

describe("a job's lifecycle audit events carry the times written with the change", () => {
  // Each event's time equals the job's own column, so a store can derive the event from the job's row
  // (PostgresStore does, migration 6). The clock moves on at every read: a second read would show.
  it.each([
    ['its start reported on its own', false],
    ['its start travelling with its result', true],
  ])('queued at createdAt, assigned at assignedAt, started at startedAt, finished at completedAt (%s)', async (_, startedWithResult) => {
    let now = 5_000_000;
    const started = await startInProcessEngine({ store: new MemoryStore(), clock: { now: () => (now += 1) } });
    controller = started.controller;
    const queued = await controller.queue({ name: 'timed', command: 'true' });
    const run = await until(() => started.runs[0]);
    if (!startedWithResult) await controller.jobStarted(run.workerId, queued.id, run.job.epoch);
    expect(await controller.jobFinished(run.workerId, queued.id, run.job.epoch, exited(0, 0), 0, startedWithResult)).toBe(true);
    const job = (await started.store.getJob(queued.id))!;
    const times = Object.fromEntries((await started.store.listAudit(queued.id)).map((event) => [event.eventType, event.occurredAt]));
    expect(times).toEqual({
      'job.queued': job.createdAt,
      'job.assigned': job.assignedAt,
      'job.started': job.startedAt,
      'job.finished': job.completedAt,
    });
  });
});
