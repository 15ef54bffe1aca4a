import { describe, expect, it } from 'vitest';
import { HodeiError } from '../src/domain/errors';
import type { Job } from '../src/domain/job';
import type { EngineObserver } from '../src/ports/observer';
import type { AuditEvent, JobClaim, JobGuard } from '../src/ports/store';
import { MemoryStore } from '../src/store/memory-store';
import { exited, reportRun, startInProcessEngine, until, type InProcessRun } from './in-process-worker';

/** The first job write that sets `state` commits, then "loses its connection" (throws UNAVAILABLE): an in-doubt commit. */
class InDoubtStore extends MemoryStore {
  inDoubt = 0;
  /** With `casOnly`, the store has no `claimJobs`: the engine assigns through compare-and-set `updateJob`. */
  constructor(
    private readonly state: Job['state'],
    casOnly = false,
  ) {
    super();
    if (casOnly) Object.defineProperty(this, 'claimJobs', { value: undefined });
  }
  override async claimJobs(claim: JobClaim): Promise<Job[]> {
    const claimed = await super.claimJobs(claim);
    if (claimed.length > 0 && this.state === 'ASSIGNED' && this.inDoubt === 0) {
      this.inDoubt += 1;
      throw new HodeiError('UNAVAILABLE', 'memory store: claimJobs failed: connection terminated after commit');
    }
    return claimed;
  }
  override async updateJob(id: string, guard: JobGuard, patch: Partial<Job>, audit?: AuditEvent): Promise<Job | undefined> {
    const updated = await super.updateJob(id, guard, patch, audit);
    if (updated && patch.state === this.state && this.inDoubt === 0) {
      this.inDoubt += 1;
      throw new HodeiError('UNAVAILABLE', 'memory store: updateJob failed: connection terminated after commit');
    }
    return updated;
  }
}

/** An engine on an InDoubtStore whose one worker runs each job at once and reports the next of `exitCodes` (then 0). */
async function platform(state: Job['state'], exitCodes: readonly number[] = [], observer?: EngineObserver, casOnly = false) {
  let runs = 0;
  return startInProcessEngine({
    store: new InDoubtStore(state, casOnly),
    ...(observer ? { observer } : {}),
    onRun: (run, controller) => void reportRun(controller, run, exitCodes[runs++] ?? 0),
  });
}

async function events(store: MemoryStore, jobId: string, eventType: string) {
  return (await store.listAudit(jobId)).filter((event) => event.eventType === eventType);
}

async function succeeded(store: MemoryStore, ...ids: string[]): Promise<Job[]> {
  return until(async () => {
    const jobs = await Promise.all(ids.map((id) => store.getJob(id)));
    return jobs.every((job) => job?.state === 'SUCCEEDED') ? (jobs as Job[]) : undefined;
  });
}

describe('a job write whose commit is in doubt (committed, then the connection broke)', () => {
  it('a result is recognised on retry: recorded once, and the worker is free for the next job', async () => {
    const { store, controller } = await platform('SUCCEEDED');
    try {
      const first = await controller.queue({ name: 'first', command: 'true' });
      const second = await controller.queue({ name: 'second', command: 'true' });
      const done = await succeeded(store, first.id, second.id);
      expect(store.inDoubt).toBe(1);
      // One worker of capacity 1 ran both: its slot was freed after the in-doubt write.
      expect(done[0]!.workerId).toBe(done[1]!.workerId);
      expect(await events(store, first.id, 'job.finished')).toHaveLength(1);
    } finally {
      await controller.stop();
    }
  }, 20_000);

  it.each([
    ['a multi-job claim', false],
    ['a compare-and-set assignment (a store without claimJobs)', true],
  ])('%s is recognised: the worker is sent the job and holds its slot for it', async (_, casOnly) => {
    const { store, controller } = await platform('ASSIGNED', [], undefined, casOnly);
    try {
      expect(store.claimJobs === undefined).toBe(casOnly);
      const first = await controller.queue({ name: 'first', command: 'true' });
      const second = await controller.queue({ name: 'second', command: 'true' });
      const done = await succeeded(store, first.id, second.id);
      expect(store.inDoubt).toBe(1);
      expect(done[0]!.workerId).toBe(done[1]!.workerId);
      expect(await events(store, first.id, 'job.assigned')).toHaveLength(1);
      const [worker] = await store.listWorkers();
      expect(worker!.runningJobIds).toEqual([]);
    } finally {
      await controller.stop();
    }
  }, 20_000);

  it('a re-queue for a retried exit code is recognised: the worker slot is freed and the job runs again', async () => {
    const { store, controller } = await platform('QUEUED', [3]);
    try {
      const job = await controller.queue({ name: 'retried', command: 'true', maxAttempts: 2, retryOnExitCodes: [3] });
      const second = await controller.queue({ name: 'second', command: 'true' });
      const [done] = await succeeded(store, job.id, second.id);
      expect(store.inDoubt).toBe(1);
      expect(done!.attempt).toBe(2);
      expect(await events(store, job.id, 'job.requeued')).toHaveLength(1);
      const [worker] = await store.listWorkers();
      expect(worker!.runningJobIds).toEqual([]);
    } finally {
      await controller.stop();
    }
  }, 20_000);

  it('a start is recognised as this report, not taken for a resend: recorded once and observed', async () => {
    const started: string[] = [];
    const { store, controller } = await platform('RUNNING', [], { jobStarted: (job) => started.push(job.id) });
    try {
      const job = await controller.queue({ name: 'started', command: 'true' });
      await succeeded(store, job.id);
      expect(store.inDoubt).toBe(1);
      expect(await events(store, job.id, 'job.started')).toHaveLength(1);
      expect(started).toEqual([job.id]);
    } finally {
      await controller.stop();
    }
  }, 20_000);

  it('a client waiting on the job is woken by an in-doubt result, which the store could not announce', async () => {
    const store = new SilentInDoubtStore('SUCCEEDED');
    const runs: InProcessRun[] = [];
    const { controller } = await startInProcessEngine({ store, onRun: (run) => runs.push(run) });
    try {
      const job = await controller.queue({ name: 'waited-on', command: 'true' });
      const run = await until(() => runs[0]);
      // What the Wait RPC does: read, and read again at each wake-up until the job has ended.
      const seen: string[] = [];
      const ended = (async () => {
        for (;;) {
          const changed = controller.notifier.next(job.id);
          const current = await controller.getJob(job.id);
          seen.push(current.state);
          if (current.state === 'SUCCEEDED') return current;
          await changed;
        }
      })();
      // The result is reported once the waiter has read the running job and waits for its next change.
      await controller.jobStarted(run.workerId, job.id, run.job.epoch);
      await until(() => (seen.includes('RUNNING') ? true : undefined));
      await controller.jobFinished(run.workerId, job.id, run.job.epoch, exited(0));
      const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the waiter was never woken')), 5_000).unref());
      expect((await Promise.race([ended, timeout])).state).toBe('SUCCEEDED');
      expect(store.inDoubt).toBe(1);
    } finally {
      await controller.stop();
    }
  }, 20_000);
});

/** An InDoubtStore whose `onJobChanged` does not announce the in-doubt write: its announcement went with the lost reply. */
class SilentInDoubtStore extends InDoubtStore {
  private muted = false;
  override onJobChanged(listener: (jobId: string | undefined) => void): () => void {
    return super.onJobChanged((jobId) => {
      if (!this.muted) listener(jobId);
    });
  }
  override async updateJob(id: string, guard: JobGuard, patch: Partial<Job>, audit?: AuditEvent): Promise<Job | undefined> {
    this.muted = this.inDoubt === 0 && patch.state === 'SUCCEEDED';
    try {
      return await super.updateJob(id, guard, patch, audit);
    } finally {
      this.muted = false;
    }
  }
}
