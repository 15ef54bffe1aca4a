import { afterEach, describe, expect, it } from 'vitest';
import type { Job } from '../src/domain/job';
import type { JobController } from '../src/engine/job-controller';
import type { AuditEvent, JobGuard } from '../src/ports/store';
import { MemoryStore } from '../src/store/memory-store';
import { exited, startInProcessEngine, until } from './in-process-worker';

let controller: JobController | undefined;

afterEach(async () => {
  await controller?.stop();
  controller = undefined;
});

/** A store on which the job's start is recorded in the instant between the engine's read of a result's job and its compare-and-set. */
class StartLandsFirst extends MemoryStore {
  startedAt: number | undefined;
  compareAndSets = 0;

  override async compareAndSetJob(id: string, guard: JobGuard, patch: Partial<Job>, audit?: AuditEvent | readonly AuditEvent[]): Promise<boolean> {
    this.compareAndSets += 1;
    if (this.startedAt !== undefined) await this.updateJob(id, { states: ['ASSIGNED'] }, { state: 'RUNNING', startedAt: this.startedAt });
    return super.compareAndSetJob(id, guard, patch, audit);
  }
}

describe('a result written without reading the job back (Store.compareAndSetJob)', () => {
  it('is written through the compare-and-set, and the engine goes on with the job read plus the result, as stored', async () => {
    const store = new StartLandsFirst();
    const finished: Job[] = [];
    const started = await startInProcessEngine({ store, observer: { jobFinished: (job) => finished.push(job) } });
    controller = started.controller;
    const queued = await controller.queue({ name: 'plain', command: 'true' });
    const run = await until(() => started.runs[0]);
    expect(await controller.jobFinished(run.workerId, queued.id, run.job.epoch, exited(0, 1), 0, true)).toBe(true);
    expect(store.compareAndSets).toBe(1);
    const stored = (await store.getJob(queued.id))!;
    expect(stored.state).toBe('SUCCEEDED');
    expect(finished).toEqual([stored]);
  });

  it('falls back to updateJob when the state moved on since the read (the start recorded meanwhile): the result lands', async () => {
    const store = new StartLandsFirst();
    const started = await startInProcessEngine({ store });
    controller = started.controller;
    const queued = await controller.queue({ name: 'raced', command: 'true' });
    const run = await until(() => started.runs[0]);
    store.startedAt = run.job.assignedAt! + 1;
    // A result that does not carry its start (the start was reported on its own and lands just before).
    expect(await controller.jobFinished(run.workerId, queued.id, run.job.epoch, exited(0, 1), 0, false)).toBe(true);
    const stored = (await store.getJob(queued.id))!;
    expect(stored).toMatchObject<Partial<Job>>({ state: 'SUCCEEDED', startedAt: store.startedAt, exitCode: 0 });
    expect(store.compareAndSets).toBe(1);
  });
});
