import { afterEach, describe, expect, it } from 'vitest';
import type { Job } from '../src/domain/job';
import { resolveEngineConfig } from '../src/engine/engine-config';
import { JobController } from '../src/engine/job-controller';
import type { WorkerChannel } from '../src/engine/worker-channel';
import { systemClock, type Clock } from '../src/ports/clock';
import { silentLogger } from '../src/ports/logger';
import type { CreateWorkerRequest, Provider, WorkerExit } from '../src/ports/provider';
import { MemoryStore } from '../src/store/memory-store';
import { HodeiError } from '../src/domain/errors';
import { WorkerRegistry } from '../src/engine/worker-registry';
import { exited, QueueReadsRecorder, successWrites, until, WritesHeld } from './in-process-worker';


/** The engines the current test made: each is stopped after it (`stop()` is idempotent: a test may stop one itself). */
const engines: JobController[] = [];
afterEach(async () => {
  for (const controller of engines.splice(0).reverse()) await controller.stop();
});

/** What a worker registered over the in-process channel: its id, session token and channel. */
interface Connected {
  workerId: string;
  sessionToken: string;
  channel: WorkerChannel;
}

/**
 * An engine with one provider of in-process workers that hold jobs (`holdsPrefetchedJobs`), of `slots` slots
 * each: records what each channel is sent (runs, cancels, drains) and lets the test end a worker's process.
 */
function engine(options: {
  prefetch: number;
  slots?: number;
  maxWorkers?: number;
  store?: MemoryStore;
  pollIntervalMs?: number;
  heartbeatTimeoutMs?: number;
  clock?: Clock;
  /** What the provider's `close()` does besides (the shipped providers end the processes of the workers they started). */
  onClose?: () => Promise<void>;
}) {
  const { prefetch, slots = 1, maxWorkers = 1 } = options;
  const store = options.store ?? new MemoryStore();
  const runs: { workerId: string; job: Job }[] = [];
  const cancels: string[] = [];
  const drains: string[] = [];
  const connected = new Map<string, Connected>();
  const exitListeners: ((exit: WorkerExit) => void)[] = [];
  const provider: Provider = {
    specificationVersion: 'v1',
    name: 'inproc',
    capabilities: { maxWorkers, workerCapacity: slots, labels: {} },
    async createWorker({ workerId, otp }: CreateWorkerRequest) {
      const channel: WorkerChannel = {
        runJob: (job: Job) => runs.push({ workerId, job }),
        cancelJob: (jobId) => cancels.push(jobId),
        drain: () => drains.push(workerId),
        close() {},
      };
      setImmediate(() => {
        void controller
          .registerWorker({ workerId, otp, capacity: slots, holdsPrefetchedJobs: true }, channel)
          .then((grant) => connected.set(workerId, { workerId, sessionToken: grant.sessionToken, channel }))
          .catch(() => undefined);
      });
    },
    async destroyWorker() {},
    onWorkerExit: (listener) => {
      exitListeners.push(listener);
      return () => undefined;
    },
    async close() {
      await options.onClose?.();
    },
  };
  const controller: JobController = new JobController({
    store,
    providers: [provider],
    clock: options.clock ?? systemClock,
    logger: silentLogger,
    config: resolveEngineConfig({
      retryBackoffMs: 10,
      prefetch,
      ...(options.pollIntervalMs ? { pollIntervalMs: options.pollIntervalMs } : {}),
      ...(options.heartbeatTimeoutMs ? { heartbeatTimeoutMs: options.heartbeatTimeoutMs } : {}),
    }),
    serverAddress: () => '127.0.0.1:1',
  });
  engines.push(controller);
  /** Queues `count` jobs and waits until `sent` of them were sent to the worker. */
  const queueAndWait = async (count: number, sent: number) => {
    const ids: string[] = [];
    for (let index = 0; index < count; index += 1) ids.push((await controller.queue({ name: `j${index}`, command: 'true' })).id);
    await until(() => (runs.length >= sent ? true : undefined), 30_000);
    return ids;
  };
  const exit = (workerId: string) => {
    for (const listener of exitListeners) listener({ workerId, exitCode: 1, signal: null, reason: 'the process exited' });
  };
  /** The worker reports `run`'s result (it started and exited 0, the start travelling with the result). */
  const finish = (run: { workerId: string; job: Job }) => controller.jobFinished(run.workerId, run.job.id, run.job.epoch, exited(0), 0, true);
  return { controller, store, runs, cancels, drains, connected, queueAndWait, exit, finish };
}

const returned = { outcome: 'CANCELLED' as const, exitCode: -1, signal: '', durationMs: 0, errorMessage: 'cancelled before it started' };

/**
 * A MemoryStore that, once armed, runs `before` ahead of the next job update matching `when` (another writer
 * acting on the job between the engine's read and its write).
 */
class InterleavingStore extends MemoryStore {
  private armed: { when: (patch: Partial<Job>) => boolean; before: (id: string) => Promise<unknown> } | undefined;
  arm(when: (patch: Partial<Job>) => boolean, before: (id: string) => Promise<unknown>): void {
    this.armed = { when, before };
  }
  override async updateJob(...args: Parameters<MemoryStore['updateJob']>): ReturnType<MemoryStore['updateJob']> {
    const armed = this.armed;
    if (armed?.when(args[2])) {
      this.armed = undefined;
      await armed.before(args[0]);
    }
    return super.updateJob(...args);
  }
}

/** A MemoryStore whose reads of one job wait until `release()` once armed with `holdReadsOf`. */
class JobReadsHeld extends MemoryStore {
  private held: string | undefined;
  private readonly waiting: (() => void)[] = [];
  holdReadsOf(jobId: string): void {
    this.held = jobId;
  }
  release(): void {
    this.held = undefined;
    for (const resume of this.waiting.splice(0)) resume();
  }
  override async getJob(id: string): ReturnType<MemoryStore['getJob']> {
    if (id === this.held) await new Promise<void>((resume) => this.waiting.push(resume));
    return super.getJob(id);
  }
}

/** Queues a job whose exit 3 is retried, and waits until its run was sent and reported started. */
async function runningRetryable(controller: JobController, runs: readonly { workerId: string; job: Job }[]) {
  const job = await controller.queue({ name: 'r', command: 'exit 3', retryOnExitCodes: [3], maxAttempts: 3 });
  await until(() => (runs.length >= 1 ? true : undefined));
  const run = runs[0]!;
  await controller.jobStarted(run.workerId, run.job.id, run.job.epoch);
  return { job, run };
}

/**
 * `run`'s worker's stream breaks and its job is cancelled (recorded, for the reconnection); the `reconnect` it
 * returns brings the worker back with its session token, saying `says` (by default that it holds prefetched jobs).
 */
async function cancelWhileAway(controller: JobController, run: { workerId: string; job: Job }, connected: ReadonlyMap<string, Connected>) {
  const { sessionToken, channel } = connected.get(run.workerId)!;
  await controller.workerDisconnected(run.workerId, channel);
  expect((await controller.cancel(run.job.id)).cancelRequestedAt).toBeDefined();
  return (says: { holdsPrefetchedJobs?: boolean; ignoresRepeatedRuns?: boolean } = { holdsPrefetchedJobs: true }) =>
    controller.registerWorker({ workerId: run.workerId, sessionToken, capacity: 1, ...says }, channel);
}

/** {@link runningRetryable}, then {@link cancelWhileAway}. */
async function cancelledWhileAway(controller: JobController, runs: readonly { workerId: string; job: Job }[], connected: ReadonlyMap<string, Connected>) {
  const { job, run } = await runningRetryable(controller, runs);
  return { job, run, reconnect: await cancelWhileAway(controller, run, connected) };
}

/**
 * Two engines (prefetch 2) on one store: the first's worker was sent three jobs, started the first, and its stream
 * to the first engine broke (it may reconnect, here or to the other, with `sessionToken`).
 */
async function twoServersWorkerAway() {
  const a = engine({ prefetch: 2 });
  await a.controller.start();
  const b = engine({ prefetch: 2, store: a.store });
  await b.controller.start();
  await a.queueAndWait(3, 3);
  const running = a.runs[0]!;
  const w = running.workerId;
  await a.controller.jobStarted(w, running.job.id, running.job.epoch);
  const { sessionToken, channel } = a.connected.get(w)!;
  await a.controller.workerDisconnected(w, channel);
  return { a, b, w, sessionToken, channel };
}

describe('cancels', () => {
  it('a cancel requested while the worker was away, met by a retryable exit, ends the job CANCELLED (exit code kept), not retried', async () => {
    const { controller, store, runs, connected } = engine({ prefetch: 0 });
    await controller.start();
    const { job, run, reconnect } = await cancelledWhileAway(controller, runs, connected);
    // The process had exited 3 while the stream was down; the worker reconnects and resends the result.
    await reconnect();
    await controller.jobFinished(run.workerId, run.job.id, run.job.epoch, exited(3));
    const after = await store.getJob(job.id);
    expect(after).toMatchObject({ state: 'CANCELLED', attempt: 1, exitCode: 3 });
    expect(after?.failureReason).toBeUndefined();
    expect((await store.getWorker(run.workerId))?.runningJobIds).toEqual([]);
  });

  it.each([
    ['a retryable exit on its last attempt', { retryOnExitCodes: [3], maxAttempts: 1 }, 3, 'CANCELLED'],
    ['an exit code that is not retried', {}, 1, 'CANCELLED'],
    ['a success', { retryOnExitCodes: [3], maxAttempts: 3 }, 0, 'SUCCEEDED'],
  ] as const)('a cancel request met by %s: a failure ends CANCELLED (exit code kept), a success SUCCEEDED', async (_, retry, exitCode, state) => {
    const { controller, store, runs, cancels } = engine({ prefetch: 0 });
    await controller.start();
    const job = await controller.queue({ name: 'c', command: `exit ${exitCode}`, ...retry });
    await until(() => (runs.length >= 1 ? true : undefined));
    const run = runs[0]!;
    await controller.jobStarted(run.workerId, run.job.id, run.job.epoch);
    await controller.cancel(job.id);
    expect(cancels).toEqual([job.id]);
    // The command exited before the worker's signal could reach it.
    await controller.jobFinished(run.workerId, run.job.id, run.job.epoch, exited(exitCode));
    const after = await store.getJob(job.id);
    expect(after).toMatchObject({ state, attempt: 1, exitCode });
    expect(after?.failureReason).toBeUndefined();
    if (state === 'CANCELLED') expect(after?.errorMessage).toBe(`cancelled; the command exited with code ${exitCode} after the cancel was requested`);
    expect((await store.getWorker(run.workerId))?.runningJobIds).toEqual([]);
  });

  it.each([
    ['a retryable result', 'the command exited with code 3'],
    ['its worker being lost', 'was lost'],
    ['the server stopping', 'the server shut down'],
  ])('a cancel that lands between %s and its re-queue is not carried to the next attempt: the job ends CANCELLED with the attempt that ran', async (cause, reason) => {
    const store = new InterleavingStore();
    const { controller, runs, exit } = engine({ prefetch: 0, store });
    await controller.start();
    const { job, run } = await runningRetryable(controller, runs);
    const ran = await store.getJob(job.id);
    // Another server records a cancel (it keeps the lease's epoch) just before this one re-queues the job.
    store.arm((patch) => patch.state === 'QUEUED', (id) => store.updateJob(id, {}, { cancelRequestedAt: Date.now() }));
    if (cause === 'a retryable result') await controller.jobFinished(run.workerId, run.job.id, run.job.epoch, exited(3, 1234));
    else if (cause === 'the server stopping') await controller.stop();
    else exit(run.workerId);
    const after = await until(async () => {
      const now = await store.getJob(job.id);
      return now?.state === 'CANCELLED' ? now : undefined;
    });
    expect(after).toMatchObject({ attempt: 1, workerId: run.workerId, startedAt: ran!.startedAt, assignedAt: ran!.assignedAt });
    expect(after.startedAt).toBeDefined();
    expect(after.notBefore).toBeUndefined();
    expect(after.errorMessage).toMatch(/^cancelled; /);
    expect(after.errorMessage).toContain(reason);
    expect(after.errorMessage).not.toContain('retrying');
    if (cause === 'a retryable result') expect(after).toMatchObject({ exitCode: 3, durationMs: 1234 });
    // Never put back in the queue, where another server's claim could take it before it ended.
    expect((await store.listAudit(job.id)).map((event) => event.eventType)).not.toContain('job.requeued');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(runs).toHaveLength(1);
  });

  it.each([
    ['ignores repeated runs', true, 2],
    ['does not say it ignores repeated runs (an older worker)', false, 1],
  ])('a worker that reconnects and %s is sent again the jobs assigned to it that did not start, not those that did', async (_, ignoresRepeatedRuns, sends) => {
    const { controller, store, runs, connected } = engine({ prefetch: 0, slots: 2 });
    await controller.start();
    const started = await controller.queue({ name: 'started', command: 'sleep 9' });
    const unstarted = await controller.queue({ name: 'lost', command: 'true' });
    await until(() => (runs.length === 2 ? true : undefined));
    const workerId = runs[0]!.workerId;
    const startedRun = runs.find((run) => run.job.id === started.id)!;
    await controller.jobStarted(workerId, started.id, startedRun.job.epoch);
    // The stream breaks: the RunJob of `unstarted` may never have reached the worker.
    const { sessionToken, channel } = connected.get(workerId)!;
    await controller.workerDisconnected(workerId, channel);
    await controller.registerWorker({ workerId, sessionToken, capacity: 2, ignoresRepeatedRuns }, channel);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const sent = (jobId: string) => runs.filter((run) => run.job.id === jobId);
    expect(sent(unstarted.id)).toHaveLength(sends);
    expect(new Set(sent(unstarted.id).map((run) => run.job.epoch)).size).toBe(1);
    expect(sent(started.id)).toHaveLength(1);
    expect(await store.getJob(unstarted.id)).toMatchObject({ state: 'ASSIGNED', workerId });
  });

  it('a cancel that lands while a reconnection re-sends the job comes after the RunJob, never before it (the worker would ignore it)', async () => {
    /** Holds the answer of the next read of one job (that read only) until `release()`. */
    class NextReadHeld extends MemoryStore {
      private held: string | undefined;
      private readonly waiting: (() => void)[] = [];
      holdReadsOf(jobId: string): void {
        this.held = jobId;
      }
      release(): void {
        for (const resume of this.waiting.splice(0)) resume();
      }
      override async getJob(id: string): ReturnType<MemoryStore['getJob']> {
        if (id !== this.held) return super.getJob(id);
        this.held = undefined;
        const read = await super.getJob(id);
        await new Promise<void>((resume) => this.waiting.push(resume));
        return read;
      }
    }
    const store = new NextReadHeld();
    const { controller, runs, cancels, connected } = engine({ prefetch: 0, store });
    await controller.start();
    const job = await controller.queue({ name: 'deploy', command: 'true' });
    await until(() => (runs.length === 1 ? true : undefined));
    const workerId = runs[0]!.workerId;
    const { sessionToken, channel } = connected.get(workerId)!;
    await controller.workerDisconnected(workerId, channel);
    // The reconnection reads the job to send it again; a client cancels it meanwhile.
    store.holdReadsOf(job.id);
    await controller.registerWorker({ workerId, sessionToken, capacity: 1, ignoresRepeatedRuns: true }, channel);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const cancelling = controller.cancel(job.id);
    await new Promise((resolve) => setTimeout(resolve, 50));
    store.release();
    expect((await cancelling).cancelRequestedAt).toBeDefined();
    // Once the cancel is recorded (and sent), the RunJob sent again is out already: the worker gets it first.
    expect(runs.map((run) => run.job.id)).toEqual([job.id, job.id]);
    expect(cancels).toEqual([job.id]);
  });

  /**
   * A job sent to the engine's one worker (which ignores repeated runs), no start reported, and cancelled while the
   * worker's stream was down (see `cancelWhileAway`); the worker has reconnected and been told to stop the job.
   */
  async function sentThenCancelledWhileAway(command: string) {
    const setup = engine({ prefetch: 0 });
    const { controller, runs, cancels, connected } = setup;
    await controller.start();
    const job = await controller.queue({ name: 'away', command });
    const run = await until(() => runs[0]);
    const reconnect = await cancelWhileAway(controller, run, connected);
    await reconnect({ ignoresRepeatedRuns: true });
    await until(() => (cancels.length === 1 ? true : undefined));
    return { ...setup, job, workerId: run.workerId, epoch: run.job.epoch };
  }

  it('a job cancelled while its worker was away, never started, is not sent again when the worker reconnects: it ends CANCELLED', async () => {
    const { controller, store, runs, cancels, job, workerId } = await sentThenCancelledWhileAway('touch /tmp/should-not-run');
    // Its heartbeats since do not list the job: its RunJob was lost, the job ends here (at the second: a result
    // resent before the first may be handled after it).
    await controller.heartbeat(workerId, []);
    expect(await store.getJob(job.id)).toMatchObject({ state: 'ASSIGNED' });
    await controller.heartbeat(workerId, []);
    const after = await until(async () => {
      const now = await store.getJob(job.id);
      return now?.state === 'CANCELLED' ? now : undefined;
    });
    expect(after).toMatchObject({ attempt: 1, errorMessage: 'cancelled before it started' });
    expect(runs).toHaveLength(1);
    expect(cancels).toEqual([job.id]);
    expect((await store.getWorker(workerId))?.runningJobIds).toEqual([]);
  });

  it('a job cancelled while its worker was away, that it runs (its start report in flight), keeps its place and ends from its report', async () => {
    const { controller, store, runs, job, workerId, epoch } = await sentThenCancelledWhileAway('sleep 30');
    // Its resent start arrives, and its heartbeat lists the job it is killing (within the kill grace).
    await controller.jobStarted(workerId, job.id, epoch);
    await controller.heartbeat(workerId, [job.id]);
    await controller.queue({ name: 'next', command: 'true' });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(runs).toHaveLength(1); // its only place is still taken: nothing is sent while it kills the first
    expect(await store.getJob(job.id)).toMatchObject({ state: 'RUNNING' });
    const sigterm = { outcome: 'CANCELLED' as const, exitCode: -1, signal: 'SIGTERM', durationMs: 5, errorMessage: '' };
    await controller.jobFinished(workerId, job.id, epoch, sigterm);
    const after = await store.getJob(job.id);
    expect(after?.state).toBe('CANCELLED');
    expect(after?.startedAt).toBeDefined();
    expect(after?.errorMessage ?? '').not.toContain('before it started');
    await until(() => (runs.length === 2 ? true : undefined));
  });

  it('a job cancelled while its worker was away, that ended meanwhile, keeps its start and result though a heartbeat is handled before its resent result', async () => {
    // It started just before the stream broke and ended while it was down: its start rides on its unacked result.
    const { controller, store, job, workerId, epoch } = await sentThenCancelledWhileAway('true');
    // Its heartbeat (which cannot list an ended job) is handled before the result it resent first.
    await controller.heartbeat(workerId, []);
    const ok = { outcome: 'EXITED' as const, exitCode: 0, signal: '', durationMs: 5, errorMessage: '' };
    await controller.jobFinished(workerId, job.id, epoch, ok, 0, true);
    const after = await store.getJob(job.id);
    expect(after?.startedAt).toBeDefined();
    expect(after?.errorMessage ?? '').not.toContain('before it started');
  });

  it('a cancel that lands during the re-queue of a short job (its start reported with its retryable result) keeps that start', async () => {
    const store = new InterleavingStore();
    const { controller, runs } = engine({ prefetch: 0, store });
    await controller.start();
    const job = await controller.queue({ name: 'r', command: 'exit 3', retryOnExitCodes: [3], maxAttempts: 3 });
    const run = await until(() => runs[0]);
    store.arm((patch) => patch.state === 'QUEUED', (id) => store.updateJob(id, {}, { cancelRequestedAt: Date.now() }));
    await controller.jobFinished(run.workerId, run.job.id, run.job.epoch, exited(3), 0, true);
    const after = await store.getJob(job.id);
    expect(after).toMatchObject({ state: 'CANCELLED', attempt: 1, exitCode: 3 });
    expect(after?.startedAt).toBeDefined();
    expect((await store.listAudit(job.id)).map((event) => event.eventType)).not.toContain('job.requeued');
    expect((await store.getWorker(run.workerId))?.runningJobIds).toEqual([]);
  });

  it('a cancel that lands just before a held job of a lost worker goes back to the queue ends it CANCELLED, never QUEUED', async () => {
    const store = new InterleavingStore();
    const { controller, runs, queueAndWait, exit } = engine({ prefetch: 2, store });
    await controller.start();
    await queueAndWait(3, 3);
    const [running, held] = runs;
    await controller.jobStarted(running!.workerId, running!.job.id, running!.job.epoch);
    // Another server records a cancel of the held job just before this one puts it back (unstarted, uncounted).
    store.arm(
      (patch) => patch.state === 'QUEUED' && patch.attempt === undefined,
      (id) => (id === held!.job.id ? store.updateJob(id, {}, { cancelRequestedAt: Date.now() }) : Promise.resolve()),
    );
    exit(running!.workerId);
    const after = await until(async () => {
      const now = await store.getJob(held!.job.id);
      return now?.state === 'CANCELLED' ? now : undefined;
    });
    expect(after).toMatchObject({ attempt: 1, errorMessage: 'cancelled before it started' });
    expect((await store.listAudit(held!.job.id)).map((event) => event.eventType)).not.toContain('job.requeued');
  });

  it('a cancel whose job was re-queued between its read and its write (the worker gave it back) cancels it in the queue', async () => {
    const store = new InterleavingStore();
    const { controller, runs, queueAndWait } = engine({ prefetch: 2, store });
    await controller.start();
    await queueAndWait(3, 3);
    const held = runs[2]!;
    store.arm(
      (patch) => patch.cancelRequestedAt !== undefined,
      (id) => store.updateJob(id, {}, { state: 'QUEUED', workerId: undefined, assignedAt: undefined }),
    );
    expect(await controller.cancel(held.job.id)).toMatchObject({ state: 'CANCELLED', attempt: 1, errorMessage: 'cancelled before it started' });
  });

  it('a cancel whose job was re-queued and claimed again (another server) between its read and its write applies to the new lease, not dropped', async () => {
    const store = new InterleavingStore();
    const { controller, runs } = engine({ prefetch: 0, store });
    await controller.start();
    const job = await controller.queue({ name: 'c', command: 'sleep 9' });
    const run = await until(() => runs[0]);
    // Another server puts the job back (uncounted, no backoff) and a third claims it, between cancel()'s read and write.
    store.arm(
      (patch) => patch.cancelRequestedAt !== undefined,
      async (id) => {
        await store.updateJob(id, {}, { state: 'QUEUED', workerId: undefined, assignedAt: undefined });
        await store.updateJob(id, {}, { state: 'ASSIGNED', workerId: 'w-other', epoch: run.job.epoch + 1, assignedAt: Date.now() });
      },
    );
    // The new lease's worker is not this server's: the cancel ends the job at once, as for any such job.
    expect(await controller.cancel(job.id)).toMatchObject({ state: 'CANCELLED', workerId: 'w-other', epoch: run.job.epoch + 1 });
    expect(await store.getJob(job.id)).toMatchObject({ state: 'CANCELLED', errorMessage: 'cancelled; its worker was gone' });
  });

  it('a reconnection sends CancelJob for the lease the cancel was requested against only, not for a later lease of the job', async () => {
    const { controller, store, runs, cancels, connected } = engine({ prefetch: 0 });
    await controller.start();
    const { job, run, reconnect } = await cancelledWhileAway(controller, runs, connected);
    // The request rode on to a later lease on the same worker (a re-queue and claim by other servers in between).
    await store.updateJob(job.id, {}, { state: 'ASSIGNED', epoch: run.job.epoch + 1, attempt: 2 });
    await reconnect();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(cancels).toEqual([]);
  });

  it('a job another server cancelled while it runs silently here is stopped at the worker\'s next heartbeat, as is one whose cancel request was never sent; one still leased to the worker is not', async () => {
    const a = engine({ prefetch: 0, slots: 2 });
    await a.controller.start();
    const b = engine({ prefetch: 0, store: a.store });
    await b.controller.start();
    await a.queueAndWait(2, 2);
    const [silent, other] = a.runs;
    const w = silent!.workerId;
    for (const run of [silent!, other!]) await a.controller.jobStarted(w, run.job.id, run.job.epoch);
    // b has no stream to the worker: it records the cancel at once, and nothing of the job reaches a.
    expect(await b.controller.cancel(silent!.job.id)).toMatchObject({ state: 'CANCELLED' });
    expect(a.cancels).toEqual([]);
    await a.controller.heartbeat(w, [silent!.job.id, other!.job.id]);
    expect(a.cancels).toEqual([silent!.job.id]);
    expect(await a.store.getJob(other!.job.id)).toMatchObject({ state: 'RUNNING', workerId: w });
    // A cancel request recorded but never sent (it raced the worker's reconnection to another server) is sent then.
    await a.store.updateJob(other!.job.id, { states: ['RUNNING'] }, { cancelRequestedAt: Date.now() });
    await a.controller.heartbeat(w, [other!.job.id]);
    expect(a.cancels).toEqual([silent!.job.id, other!.job.id]);
    // Not a job back in the queue: its next run could reach this worker before a CancelJob naming the job would.
    const requeued = await a.controller.queue({ name: 'requeued', command: 'true' });
    await a.store.updateJob(requeued.id, {}, { state: 'QUEUED', notBefore: Date.now() + 60_000 });
    await a.controller.heartbeat(w, [requeued.id]);
    expect(a.cancels).toEqual([silent!.job.id, other!.job.id]);
  });

  it('a second cancel() records nothing more (one event, the first request time) and tells the worker again', async () => {
    const { controller, store, runs, cancels } = engine({ prefetch: 0 });
    await controller.start();
    const job = await controller.queue({ name: 'c', command: 'sleep 100' });
    await until(() => (runs.length >= 1 ? true : undefined));
    const first = await controller.cancel(job.id);
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(await controller.cancel(job.id)).toMatchObject({ state: 'ASSIGNED', cancelRequestedAt: first.cancelRequestedAt });
    expect((await store.getJob(job.id))?.cancelRequestedAt).toBe(first.cancelRequestedAt);
    expect((await store.listAudit(job.id)).filter((event) => event.eventType === 'job.cancel_requested')).toHaveLength(1);
    expect(cancels).toEqual([job.id, job.id]);
  });

  it('a worker that reconnected to another live server: a cancel through its first server ends the job CANCELLED at once instead of hanging', async () => {
    const a = engine({ prefetch: 0, heartbeatTimeoutMs: 1_000 });
    await a.controller.start();
    const b = engine({ prefetch: 0, store: a.store, heartbeatTimeoutMs: 1_000 });
    await b.controller.start();
    const [id] = await a.queueAndWait(1, 1);
    const run = a.runs[0]!;
    await a.controller.jobStarted(run.workerId, run.job.id, run.job.epoch);
    const { sessionToken, channel } = a.connected.get(run.workerId)!;
    await a.controller.workerDisconnected(run.workerId, channel);
    await new Promise((resolve) => setTimeout(resolve, 5));
    await b.controller.registerWorker({ workerId: run.workerId, sessionToken, capacity: 1, holdsPrefetchedJobs: true }, channel);
    expect(await a.controller.cancel(id!)).toMatchObject({ state: 'CANCELLED' });
  });

  it('a cancel kept for a worker that then reconnected to another server is dropped there: back on its first server later, the worker is told of a later lease\'s cancel', async () => {
    const { a, b, w, sessionToken, channel } = await twoServersWorkerAway();
    const [running, held] = a.runs;
    // Kept on the first server for the worker's return, against the running lease.
    expect((await a.controller.cancel(running!.job.id)).cancelRequestedAt).toBeDefined();
    await new Promise((resolve) => setTimeout(resolve, 5));
    const onB = { ...channel, cancelJob: () => undefined };
    const grant = await b.controller.registerWorker({ workerId: w, sessionToken, capacity: 1, holdsPrefetchedJobs: true }, onB);
    // A cancel through the first server sees that the worker moved on: that job ends at once, and the
    // request kept for the worker's return there is dropped.
    expect(await a.controller.cancel(held!.job.id)).toMatchObject({ state: 'CANCELLED' });
    await b.controller.workerDisconnected(w, onB);
    // Meanwhile the cancelled job was leased to the worker again (other servers' re-queue and claim).
    await a.store.updateJob(running!.job.id, {}, { epoch: running!.job.epoch + 1 });
    const told: string[] = [];
    await a.controller.registerWorker({ workerId: w, sessionToken: grant.sessionToken, capacity: 1, holdsPrefetchedJobs: true }, { ...channel, cancelJob: (jobId) => told.push(jobId) });
    expect(await until(() => (told.length > 0 ? told : undefined), 3_000)).toEqual([running!.job.id]);
  });

  it('a job sent beyond what the worker holds (a held job was cancelled through another server) is given back uncounted; the worker drains, then ends TERMINATED', async () => {
    const a = engine({ prefetch: 2 });
    await a.controller.start();
    const b = engine({ prefetch: 2, store: a.store });
    await b.controller.start();
    /** Re-queued uncounted (b's worker may have taken it since), not failed. */
    const backInQueue = async (id: string) => {
      const job = await a.store.getJob(id);
      const requeued = (await a.store.listAudit(id)).some((event) => event.eventType === 'job.requeued');
      return requeued && job?.attempt === 1 && (job.state === 'QUEUED' || job.state === 'ASSIGNED' || job.state === 'SUCCEEDED');
    };
    await a.queueAndWait(3, 3);
    const [running, waiting, held] = a.runs;
    expect((await b.controller.cancel(held!.job.id)).state).toBe('CANCELLED');
    // a's record no longer counts the job the worker still holds: a sends one more, which the worker gives back.
    await a.controller.queue({ name: 'more', command: 'true' });
    await until(() => (a.runs.length >= 4 ? true : undefined));
    const more = a.runs[3]!;
    await a.controller.jobReturned(more.workerId, more.job.id, more.job.epoch);
    expect(await backInQueue(more.job.id)).toBe(true);
    expect(a.drains).toEqual([more.workerId]);
    // Draining, the worker gives back what waits on it, ends its running job, and exits.
    await a.controller.jobReturned(waiting!.workerId, waiting!.job.id, waiting!.job.epoch);
    await a.controller.jobFinished(running!.workerId, running!.job.id, running!.job.epoch, exited(0));
    expect(a.drains).toEqual([more.workerId]);
    a.exit(running!.workerId);
    expect(await until(async () => ((await a.store.getWorker(running!.workerId))?.state === 'TERMINATED' ? true : undefined))).toBe(true);
    expect(await backInQueue(waiting!.job.id)).toBe(true);
  });
});

describe('the heartbeat timeout', () => {
  it('does not hold against a worker the time this server stood still (a blocked or paused process), but still finds a silent one', async () => {
    const { controller, store, runs, queueAndWait } = engine({ prefetch: 0, heartbeatTimeoutMs: 1_000 });
    await controller.start();
    await queueAndWait(1, 1);
    const workerId = runs[0]!.workerId;
    await controller.heartbeat(workerId);
    // The process stands still longer than the timeout: its worker's heartbeats would wait in the socket.
    const until_ = Date.now() + 2_500;
    while (Date.now() < until_) {
      // blocked
    }
    controller.wake();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await store.getWorker(workerId)).toMatchObject({ state: 'BUSY' });
    // Silent for as long again, then a whole timeout: lost.
    const lost = await until(async () => ((await store.getWorker(workerId))?.state === 'LOST' ? true : undefined), 10_000);
    expect(lost).toBe(true);
  }, 20_000);
});

/** A MemoryStore whose reads of the workers fail once with UNAVAILABLE every `periodMs` while `flapping`. */
class FlappingStore extends MemoryStore {
  flapping = false;
  private lastFailure = 0;
  constructor(private readonly periodMs: number) {
    super();
  }
  private maybeFail(): void {
    if (!this.flapping || Date.now() - this.lastFailure < this.periodMs) return;
    this.lastFailure = Date.now();
    throw new HodeiError('UNAVAILABLE', 'one call failed (a pool checkout timeout, say)');
  }
  override async listWorkers(...args: Parameters<MemoryStore['listWorkers']>): ReturnType<MemoryStore['listWorkers']> {
    this.maybeFail();
    return super.listWorkers(...args);
  }
  override async listWorkersAndQueue(...args: Parameters<NonNullable<MemoryStore['listWorkersAndQueue']>>) {
    this.maybeFail();
    return super.listWorkersAndQueue!(...args);
  }
}

describe('the heartbeat timeout, with a store that blips', () => {
  it('still finds a dead worker lost when a store call fails now and then (each outage forgives only its own length)', async () => {
    const store = new FlappingStore(400);
    const { controller, runs, queueAndWait } = engine({ prefetch: 0, store, heartbeatTimeoutMs: 1_000, pollIntervalMs: 100 });
    await controller.start();
    await queueAndWait(1, 1);
    const workerId = runs[0]!.workerId;
    // The worker is dead from now on; the store fails one call every 400 ms (each succeeds on its retry).
    store.flapping = true;
    const lost = await until(async () => ((await store.getWorker(workerId))?.state === 'LOST' ? true : undefined), 8_000);
    store.flapping = false;
    expect(lost).toBe(true);
  }, 20_000);
});

describe('retries', () => {
  it('a job that succeeds on a retry carries no error of the attempt before', async () => {
    const { controller, store, runs } = engine({ prefetch: 0 });
    await controller.start();
    const job = await controller.queue({ name: 'flaky', command: 'exit 3', retryOnExitCodes: [3], maxAttempts: 2 });
    const first = await until(() => runs[0]);
    await controller.jobFinished(first.workerId, job.id, first.job.epoch, exited(3), 0, true);
    expect(await store.getJob(job.id)).toMatchObject({ state: 'QUEUED', attempt: 2, errorMessage: expect.stringContaining('retrying') });
    const second = await until(() => runs[1]);
    await controller.jobFinished(second.workerId, job.id, second.job.epoch, exited(0), 0, true);
    const done = await store.getJob(job.id);
    expect(done).toMatchObject({ state: 'SUCCEEDED', attempt: 2, exitCode: 0 });
    expect(done).not.toHaveProperty('errorMessage');
  });
});

describe('marking a worker lost', () => {
  /** A MemoryStore that, once armed, runs `before` ahead of the next read of a worker. */
  class WorkerReadHook extends MemoryStore {
    before: (() => Promise<unknown>) | undefined;
    override async getWorker(id: string): ReturnType<MemoryStore['getWorker']> {
      const hook = this.before;
      this.before = undefined;
      await hook?.();
      return super.getWorker(id);
    }
  }

  it('does not mark lost a worker heard from between the pass that found it silent and the write', async () => {
    const store = new WorkerReadHook();
    const { controller, runs, queueAndWait } = engine({ prefetch: 0, store, heartbeatTimeoutMs: 1_000 });
    await controller.start();
    await queueAndWait(1, 1);
    const workerId = runs[0]!.workerId;
    // Silent past the timeout as the store says, then heard from just before the engine re-reads it to mark it lost
    // (it reconnected to another server, which wrote its heartbeat).
    await store.updateWorker(workerId, {}, { lastHeartbeat: Date.now() - 5_000 });
    store.before = () => store.updateWorker(workerId, {}, { lastHeartbeat: Date.now() + 60_000 });
    controller.wake();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await store.getWorker(workerId)).toMatchObject({ state: 'BUSY' });
    expect((await store.listAudit(workerId)).map((event) => event.eventType)).not.toContain('worker.lost');
  });
});

describe('jobs held on a worker (prefetch), in the engine', () => {
  it('a held job whose cancel crosses its return by a draining worker ends CANCELLED, not back in the queue', async () => {
    const { controller, store, runs, queueAndWait } = engine({ prefetch: 2 });
    await controller.start();
    await queueAndWait(3, 3);
    const held = runs[2]!;
    expect((await controller.cancel(held.job.id)).cancelRequestedAt).toBeDefined();
    // The worker drained before the CancelJob reached it: it gave the job back.
    await controller.jobReturned(held.workerId, held.job.id, held.job.epoch);
    expect(await store.getJob(held.job.id)).toMatchObject({ state: 'CANCELLED', attempt: 1 });
    expect((await store.getWorker(held.workerId))?.runningJobIds).toEqual(runs.slice(0, 2).map((run) => run.job.id));
  });

  it("a job whose cancel was requested (held or running) ends CANCELLED when its worker is lost, or the server stops, instead of going back to the queue", async () => {
    const { controller, store, runs, connected, queueAndWait, exit } = engine({ prefetch: 2 });
    await controller.start();
    await queueAndWait(3, 3);
    const [first, second, third] = runs;
    await controller.jobStarted(first!.workerId, first!.job.id, first!.job.epoch);
    const { channel } = connected.get(second!.workerId)!;
    await controller.workerDisconnected(second!.workerId, channel);
    // Requested while the worker's stream is down: kept on the worker, to be told when it comes back.
    for (const run of [first!, second!, third!]) expect((await controller.cancel(run.job.id)).cancelRequestedAt).toBeDefined();
    exit(second!.workerId);
    for (const run of [first!, second!, third!]) {
      expect(await until(async () => ((await store.getJob(run.job.id))?.state === 'CANCELLED' ? store.getJob(run.job.id) : undefined))).toMatchObject({ attempt: 1 });
    }
    const stopping = engine({ prefetch: 2 });
    await stopping.controller.start();
    await stopping.queueAndWait(3, 3);
    const [running, , held] = stopping.runs;
    await stopping.controller.jobStarted(running!.workerId, running!.job.id, running!.job.epoch);
    for (const run of [running!, held!]) await stopping.controller.cancel(run.job.id);
    await stopping.controller.stop();
    for (const run of [running!, held!]) expect(await stopping.store.getJob(run.job.id)).toMatchObject({ state: 'CANCELLED', attempt: 1 });
    expect(await stopping.store.getJob(stopping.runs[1]!.job.id)).toMatchObject({ state: 'QUEUED', attempt: 1 });
  });

  it.each([
    ['a held (waiting) job', 2, 2],
    ['a running job (no prefetch)', 0, 0],
  ])('%s cancelled while its worker is disconnected: the worker is told when it reconnects, and keeps its place until it reports', async (_, prefetch, index) => {
    const { controller, store, runs, cancels, connected, queueAndWait } = engine({ prefetch });
    await controller.start();
    await queueAndWait(4, prefetch + 1);
    const { workerId, job } = runs[index]!;
    const { sessionToken, channel } = connected.get(workerId)!;
    const held = (await store.getWorker(workerId))!.runningJobIds;
    await controller.workerDisconnected(workerId, channel);
    expect(await controller.cancel(job.id)).toMatchObject({ state: 'ASSIGNED', cancelRequestedAt: expect.any(Number) });
    expect(cancels).toEqual([]);
    // Still on the worker's record: the engine sends it no job beyond what it really holds.
    expect((await store.getWorker(workerId))!.runningJobIds).toEqual(held);
    await controller.registerWorker({ workerId, sessionToken, capacity: 1, holdsPrefetchedJobs: true }, channel);
    await until(() => (cancels.includes(job.id) ? true : undefined));
    expect(runs).toHaveLength(prefetch + 1);
    await controller.jobFinished(workerId, job.id, job.epoch, returned);
    expect(await store.getJob(job.id)).toMatchObject({ state: 'CANCELLED' });
    expect((await store.getWorker(workerId))!.runningJobIds).toEqual(held.filter((id) => id !== job.id));
  });

  it('drain() asks a worker granted a prefetch to drain: its waiting jobs come back uncounted; a worker granted none is not asked', async () => {
    const { controller, store, runs, drains, queueAndWait } = engine({ prefetch: 2 });
    await controller.start();
    await queueAndWait(4, 3);
    const workerId = runs[0]!.workerId;
    const draining = controller.drain({ graceMs: 10_000 });
    await until(() => (drains.length > 0 ? true : undefined));
    expect(drains).toEqual([workerId]);
    expect(await store.getWorker(workerId)).toMatchObject({ state: 'DRAINING' });
    for (const run of runs.slice(1)) await controller.jobReturned(workerId, run.job.id, run.job.epoch);
    await controller.jobFinished(workerId, runs[0]!.job.id, runs[0]!.job.epoch, exited(0), 0, true);
    expect(await draining).toBe(true);
    for (const run of runs.slice(1)) expect(await store.getJob(run.job.id)).toMatchObject({ state: 'QUEUED', attempt: 1 });
    expect(runs).toHaveLength(3);
    const plain = engine({ prefetch: 0 });
    await plain.controller.start();
    await plain.queueAndWait(2, 1);
    expect(await plain.controller.drain({ graceMs: 0 })).toBe(false);
    expect(plain.drains).toEqual([]);
    expect(await plain.store.getWorker(plain.runs[0]!.workerId)).toMatchObject({ state: 'BUSY' });
    await plain.controller.stop();
  });

  it('a worker granted a prefetch that reconnects while the server drains is asked to drain then', async () => {
    const { controller, runs, drains, connected, queueAndWait } = engine({ prefetch: 2 });
    await controller.start();
    await queueAndWait(3, 3);
    const { workerId, sessionToken, channel } = connected.get(runs[0]!.workerId)!;
    await controller.workerDisconnected(workerId, channel);
    expect(await controller.drain({ graceMs: 0 })).toBe(false);
    expect(drains).toEqual([]);
    await controller.registerWorker({ workerId, sessionToken, capacity: 1, holdsPrefetchedJobs: true }, channel);
    await until(() => (drains.length > 0 ? true : undefined));
    expect(drains).toEqual([workerId]);
  });

  it('a result that frees no refill (half the prefetch room is not free yet) starts no scheduling pass; one that does, starts one', async () => {
    const store = new QueueReadsRecorder();
    const { controller, runs, queueAndWait, finish } = engine({ prefetch: 3, store, pollIntervalMs: 15_000 });
    await controller.start();
    await queueAndWait(10, 4);
    const settle = () => new Promise((resolve) => setTimeout(resolve, 100));
    await settle();
    const before = store.limits.length;
    const [first, second] = runs;
    await finish(first!);
    await settle();
    expect(store.limits.length).toBe(before);
    await finish(second!);
    await until(() => (runs.length === 6 ? true : undefined));
    expect(store.limits.length).toBeGreaterThan(before);
  });

  it('a worker is refilled as its results arrive, before they are recorded: the slots they free count at once, and it is never sent more than it holds room for', async () => {
    const store = new WritesHeld();
    store.hold(successWrites);
    const { controller, runs, queueAndWait, finish } = engine({ prefetch: 2, store, pollIntervalMs: 15_000 });
    await controller.start();
    try {
      // One slot and two held: the worker holds three jobs.
      await queueAndWait(6, 3);
      const [first, second] = runs;
      // Its first two jobs end: the worker reports them, and their results' writes wait.
      const recorded = [first!, second!].map(finish);
      // Their slots are free on the worker: it is sent two more jobs while their results are still being written.
      await until(() => (runs.length === 5 ? true : undefined), 5_000);
      expect(store.held).toBe(2);
      store.release();
      expect(await Promise.all(recorded)).toEqual([true, true]);
      const worker = await store.getWorker(first!.workerId);
      expect(worker).toMatchObject({ state: 'BUSY', runningJobIds: runs.slice(2).map((run) => run.job.id) });
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(runs).toHaveLength(5);
    } finally {
      store.release(); // the held writes, so that the engine can stop
    }
  });

  it("frees the slots of a worker's results recorded meanwhile in one release, while its record is being written", async () => {
    class ReleasesHeld extends MemoryStore {
      readonly releases: string[][] = [];
      private gate: Promise<void> | undefined;
      private open: (() => void) | undefined;
      holdNextRelease(): void {
        this.gate = new Promise<void>((resolve) => (this.open = resolve));
      }
      release(): void {
        this.open?.();
      }
      override async removeRunningJobs(...args: Parameters<MemoryStore['removeRunningJobs']>): ReturnType<MemoryStore['removeRunningJobs']> {
        this.releases.push([...args[1]]);
        const gate = this.gate;
        this.gate = undefined;
        await gate;
        return super.removeRunningJobs(...args);
      }
    }
    const store = new ReleasesHeld();
    const { controller, runs, queueAndWait, finish } = engine({ prefetch: 3, store, pollIntervalMs: 15_000 });
    await controller.start();
    try {
      await queueAndWait(4, 4);
      store.holdNextRelease();
      const first = finish(runs[0]!);
      await until(() => (store.releases.length === 1 ? true : undefined));
      const others = runs.slice(1, 4).map(finish);
      // Their results written, their releases wait behind the held one (a result is written before its release).
      const written = async () => (await Promise.all(runs.slice(1, 4).map((run) => store.getJob(run.job.id)))).every((job) => job?.state === 'SUCCEEDED');
      await until(async () => ((await written()) ? true : undefined));
      store.release();
      expect(await Promise.all([first, ...others])).toEqual([true, true, true, true]);
      expect(store.releases).toEqual([[runs[0]!.job.id], runs.slice(1, 4).map((run) => run.job.id)]);
      expect(await store.getWorker(runs[0]!.workerId)).toMatchObject({ runningJobIds: [] });
    } finally {
      store.release(); // the held writes, so that the engine can stop
    }
  });

  it('a result whose release failed frees its place when the worker sends it again (the results released with it too)', async () => {
    class ReleaseFailsOnce extends MemoryStore {
      fail = 0;
      override async removeRunningJobs(...args: Parameters<MemoryStore['removeRunningJobs']>): ReturnType<MemoryStore['removeRunningJobs']> {
        if (this.fail > 0) {
          this.fail -= 1;
          throw new Error('the statement failed');
        }
        return super.removeRunningJobs(...args);
      }
    }
    const store = new ReleaseFailsOnce();
    const { controller, runs, queueAndWait, finish } = engine({ prefetch: 3, store, pollIntervalMs: 15_000 });
    await controller.start();
    await queueAndWait(3, 3);
    store.fail = 1;
    // Two results recorded side by side share the release that fails: neither is acknowledged...
    expect((await Promise.allSettled([finish(runs[0]!), finish(runs[1]!)])).map((outcome) => outcome.status)).toEqual(['rejected', 'rejected']);
    // ...so the worker sends both again, and their places are freed then.
    expect(await finish(runs[0]!)).toBe(true);
    expect(await finish(runs[1]!)).toBe(true);
    expect(await store.getWorker(runs[0]!.workerId)).toMatchObject({ runningJobIds: [runs[2]!.job.id] });
  });

  for (const prefetch of [0, 2]) {
    it(`a result resent for an earlier run of a job the worker runs again frees no place (prefetch ${prefetch}): the worker is sent nothing beyond its room`, async () => {
      const store = new JobReadsHeld();
      const { controller, runs } = engine({ prefetch, store, pollIntervalMs: 15_000 });
      await controller.start();
      try {
        const job = await controller.queue({ name: 'r', command: 'exit 3', retryOnExitCodes: [3], maxAttempts: 3 });
        await until(() => (runs.length === 1 ? true : undefined), 5_000);
        const first = runs[0]!;
        expect(await controller.jobFinished(first.workerId, job.id, first.job.epoch, exited(3), 0, true)).toBe(true);
        // Retried after its backoff, on the same worker, which then holds as many jobs as it may.
        await until(() => (runs.length === 2 ? true : undefined), 5_000);
        expect(runs[1]!.job).toMatchObject({ id: job.id, epoch: first.job.epoch + 1 });
        for (let index = 0; index < prefetch + 1; index += 1) await controller.queue({ name: `q${index}`, command: 'true' });
        await until(() => (runs.length === 2 + prefetch ? true : undefined), 5_000);
        // The worker resends the first run's result (its ack was lost with a broken stream), read slowly; a pass meanwhile.
        store.holdReadsOf(job.id);
        const stale = controller.jobFinished(first.workerId, job.id, first.job.epoch, exited(3), 0, true);
        await new Promise((resolve) => setTimeout(resolve, 20));
        await controller.queue({ name: 'later', command: 'true' });
        await new Promise((resolve) => setTimeout(resolve, 100));
        expect(runs).toHaveLength(2 + prefetch);
        store.release();
        expect(await stale).toBe(true);
      } finally {
        store.release(); // the held reads, so that the engine can stop
      }
    });
  }

  it('a worker whose stream closed is offered nothing while one of its results is being recorded: another worker is started', async () => {
    const store = new WritesHeld();
    store.hold(successWrites);
    const { controller, runs, connected, finish } = engine({ prefetch: 2, maxWorkers: 2, store, pollIntervalMs: 15_000 });
    await controller.start();
    try {
      await controller.queue({ name: 'j', command: 'true' });
      await until(() => (runs.length === 1 && connected.size === 1 ? true : undefined), 5_000);
      const run = runs[0]!;
      const recorded = finish(run);
      await controller.workerDisconnected(run.workerId, connected.get(run.workerId)!.channel);
      await controller.queue({ name: 'k', command: 'true' });
      await until(async () => ((await store.listWorkers()).length === 2 ? true : undefined), 5_000);
      store.release();
      expect(await recorded).toBe(true);
    } finally {
      store.release(); // the held writes, so that the engine can stop
    }
  });

  it('beyond the part of a deep queue a pass reads, holds no job on a worker while its provider may start another', async () => {
    const { controller, store, runs, queueAndWait } = engine({ prefetch: 3, maxWorkers: 2 });
    await controller.start();
    await queueAndWait(1, 1);
    // A whole pass's window of jobs no worker can run, then jobs the worker can: the pass sees none of those,
    // the claim beyond it does.
    for (let index = 0; index < 10_000; index += 1) await controller.queue({ name: `gpu${index}`, command: 'true', labels: { gpu: 'yes' } });
    const later = [];
    for (let index = 0; index < 3; index += 1) later.push((await controller.queue({ name: `later${index}`, command: 'true' })).id);
    await new Promise((resolve) => setTimeout(resolve, 500)); // periodic passes, each claiming beyond its window
    expect(runs).toHaveLength(1);
    for (const id of later) expect(await store.getJob(id)).toMatchObject({ state: 'QUEUED' });
  }, 60_000);

  it('recomputes the grant when a worker reconnects: none for one that no longer says it holds jobs, none from a server without prefetch', async () => {
    const a = engine({ prefetch: 2 });
    await a.controller.start();
    await a.queueAndWait(1, 1);
    const { workerId, channel } = a.connected.get(a.runs[0]!.workerId)!;
    let { sessionToken } = a.connected.get(workerId)!;
    expect(await a.store.getWorker(workerId)).toMatchObject({ capacity: 3 });
    const reconnect = async (controller: JobController, holdsPrefetchedJobs: boolean) => {
      const grant = await controller.registerWorker({ workerId, sessionToken, capacity: 1, holdsPrefetchedJobs }, channel);
      sessionToken = grant.sessionToken; // each reconnection is answered with a new one
      return grant;
    };
    expect(await reconnect(a.controller, false)).toMatchObject({ prefetch: 0 });
    expect(await a.store.getWorker(workerId)).toMatchObject({ capacity: 1 });
    expect(await reconnect(a.controller, true)).toMatchObject({ prefetch: 2 });
    expect(await a.store.getWorker(workerId)).toMatchObject({ capacity: 3 });
    // Another server on the same store, without prefetch: its slots come from the registration.
    const b = engine({ prefetch: 0, store: a.store });
    await b.controller.start();
    expect(await reconnect(b.controller, true)).toMatchObject({ prefetch: 0 });
    expect(await a.store.getWorker(workerId)).toMatchObject({ capacity: 1 });
  });
});

/** A MemoryStore that runs `afterTokenWrite` (once) right after a worker's new session token is stored, before the store's reply. */
class TokenWriteHookStore extends MemoryStore {
  afterTokenWrite: (() => Promise<unknown>) | undefined;
  override async updateWorker(...args: Parameters<MemoryStore['updateWorker']>): ReturnType<MemoryStore['updateWorker']> {
    const updated = await super.updateWorker(...args);
    const hook = args[2].sessionTokenHash !== undefined ? this.afterTokenWrite : undefined;
    if (hook) this.afterTokenWrite = undefined;
    await hook?.();
    return updated;
  }
}

/** One engine on a {@link TokenWriteHookStore}: its worker started a job, then its stream broke; `reconnect` brings it back here. */
async function runningThenAway() {
  const store = new TokenWriteHookStore();
  const a = engine({ prefetch: 0, store });
  await a.controller.start();
  const [id] = await a.queueAndWait(1, 1);
  const run = a.runs[0]!;
  await a.controller.jobStarted(run.workerId, run.job.id, run.job.epoch);
  const { sessionToken, channel } = a.connected.get(run.workerId)!;
  await a.controller.workerDisconnected(run.workerId, channel);
  const reconnect = () => a.controller.registerWorker({ workerId: run.workerId, sessionToken, capacity: 1, holdsPrefetchedJobs: true }, channel);
  return { a, store, id: id!, reconnect };
}

describe('a worker that reconnected to another server', () => {
  it('is given no new job by the other server once its first server started stopping: none ends CANCELLED when that server ends its process', async () => {
    // The other server's pass could give the worker a job between the stopping server's read of its jobs and its
    // marking of the worker: the process the stopping server's provider then ends reports it CANCELLED.
    class ListHookStore extends MemoryStore {
      hook: (() => Promise<void>) | undefined;
      override async listJobs(...args: Parameters<MemoryStore['listJobs']>) {
        const hook = this.hook;
        this.hook = undefined;
        await hook?.();
        return super.listJobs(...args);
      }
    }
    const store = new ListHookStore();
    const killed: { report?: () => Promise<void> } = {};
    const a = engine({ prefetch: 0, slots: 2, store, onClose: () => killed.report?.() ?? Promise.resolve() });
    await a.controller.start();
    const b = engine({ prefetch: 0, store, maxWorkers: 0 });
    await b.controller.start();
    await a.controller.queue({ name: 'j', command: 'true', maxAttempts: 3 });
    const running = await until(() => a.runs[0]);
    const w = running.workerId;
    await a.controller.jobStarted(w, running.job.id, running.job.epoch);
    const { sessionToken, channel } = a.connected.get(w)!;
    await a.controller.workerDisconnected(w, channel);
    const sentByB: Job[] = [];
    await b.controller.registerWorker({ workerId: w, sessionToken, capacity: 2, holdsPrefetchedJobs: true }, { ...channel, runJob: (job: Job) => void sentByB.push(job) });
    let k: Job | undefined;
    store.hook = async () => {
      k = await b.controller.queue({ name: 'k', command: 'sleep 100', maxAttempts: 3 });
      // The other server's passes run meanwhile (it has a free slot on the worker).
      await new Promise((resolve) => setTimeout(resolve, 200));
    };
    killed.report = async () => {
      const sigterm = { outcome: 'CANCELLED' as const, exitCode: -1, signal: 'SIGTERM', durationMs: 5, errorMessage: '' };
      for (const job of [running.job, ...sentByB]) await b.controller.jobFinished(w, job.id, job.epoch, sigterm).catch(() => undefined);
    };
    await a.controller.stop();
    expect(sentByB.map((job) => job.id)).not.toContain(k!.id);
    expect((await store.getJob(k!.id))?.state).not.toBe('CANCELLED');
    expect(await store.getJob(running.job.id)).toMatchObject({ state: 'QUEUED', attempt: 2 });
  });

  it("is still its first server's to drain (that server's provider ends its process at stop): drain waits for its jobs, whose results land through the other server", async () => {
    const { a, b, w, sessionToken, channel } = await twoServersWorkerAway();
    await b.controller.registerWorker({ workerId: w, sessionToken, capacity: 1, holdsPrefetchedJobs: true }, channel);
    // Its jobs run on (reporting through the other server): the first server has not drained.
    expect(await a.controller.drain({ graceMs: 0 })).toBe(false);
    const drained = a.controller.drain({ graceMs: 60_000 });
    const [running, held, waiting] = a.runs;
    await b.controller.jobFinished(w, running!.job.id, running!.job.epoch, exited(0));
    await b.controller.jobFinished(w, held!.job.id, held!.job.epoch, exited(0), 0, true);
    await b.controller.jobFinished(w, waiting!.job.id, waiting!.job.epoch, exited(0), 0, true);
    expect(await drained).toBe(true);
    await a.controller.stop();
    for (const run of a.runs) expect(await a.store.getJob(run.job.id)).toMatchObject({ state: 'SUCCEEDED', attempt: 1 });
    expect(await a.store.getWorker(w)).toMatchObject({ state: 'TERMINATED' });
  });

  it("has its jobs settled by its first server's stop before that server's provider ends its process: what the killed worker reports through the other server (CANCELLED) is refused, the jobs go back to the queue", async () => {
    const store = new MemoryStore();
    /** The worker's process, ended by the first server's provider: it reports every job it holds CANCELLED, through the server it is connected to. */
    const killed: { report?: () => Promise<void> } = {};
    const a = engine({ prefetch: 2, store, onClose: () => killed.report?.() ?? Promise.resolve() });
    await a.controller.start();
    const b = engine({ prefetch: 0, store });
    await b.controller.start();
    for (const name of ['running', 'held']) await a.controller.queue({ name, command: 'true', maxAttempts: 3 });
    await until(() => (a.runs.length >= 2 ? true : undefined));
    const [running, held] = a.runs;
    const w = running!.workerId;
    await a.controller.jobStarted(w, running!.job.id, running!.job.epoch);
    const { sessionToken, channel } = a.connected.get(w)!;
    await a.controller.workerDisconnected(w, channel);
    await b.controller.registerWorker({ workerId: w, sessionToken, capacity: 1, holdsPrefetchedJobs: true }, { ...channel, runJob: () => undefined });
    killed.report = async () => {
      const sigterm = { outcome: 'CANCELLED' as const, exitCode: -1, signal: 'SIGTERM', durationMs: 5, errorMessage: '' };
      await b.controller.jobFinished(w, running!.job.id, running!.job.epoch, sigterm).catch(() => undefined);
      await b.controller.jobFinished(w, held!.job.id, held!.job.epoch, returned).catch(() => undefined);
    };

    await a.controller.stop();
    // Back in the queue (the other server may have claimed them again since), never CANCELLED: nobody cancelled them.
    const ran = (await store.getJob(running!.job.id))!;
    expect(ran).toMatchObject({ attempt: 2, errorMessage: 'the server shut down while the job was running' });
    expect(ran.state).not.toBe('CANCELLED');
    const unstarted = (await store.getJob(held!.job.id))!;
    expect(unstarted).toMatchObject({ attempt: 1 });
    expect(['QUEUED', 'ASSIGNED']).toContain(unstarted.state);
    expect((await store.listAudit(held!.job.id)).map((event) => event.eventType)).toContain('job.requeued');
    expect(await store.getWorker(w)).toMatchObject({ state: 'TERMINATED' });
  });

  it("is still its server's while it reconnects to that server: a cancel reading its record once the new token is stored waits for the reconnection, which sends it", async () => {
    const { a, store, id, reconnect } = await runningThenAway();
    let cancelled: Job | undefined;
    store.afterTokenWrite = async () => {
      cancelled = await a.controller.cancel(id);
    };
    await reconnect();
    // Recorded for the worker (which is reconnecting here), not ended at once as for a worker gone to another server.
    expect(cancelled).toMatchObject({ state: 'RUNNING', cancelRequestedAt: expect.any(Number) });
    expect(await until(() => (a.cancels.length > 0 ? a.cancels : undefined), 3_000)).toEqual([id]);
  });

  it("is still its server's after a reconnection whose token write failed once stored (a lost reply): a cancel waits for it, as for any worker of the server's that may come back", async () => {
    const { a, store, id, reconnect } = await runningThenAway();
    store.afterTokenWrite = () => Promise.reject(new Error('connection lost after the write'));
    await expect(reconnect()).rejects.toThrow('connection lost after the write');
    // The record holds the hash this server drew: no other server has the worker.
    expect(await a.controller.cancel(id)).toMatchObject({ state: 'RUNNING', cancelRequestedAt: expect.any(Number) });
  });

  it('leaves no session-token hash behind for a worker a server does not answer for: one refused there, one of another server registered there, one another server ended', async () => {
    const { a, b, w, sessionToken, channel } = await twoServersWorkerAway();
    /** The hashes a server keeps of the session tokens it issued, by worker (private; its size is what grows). */
    const tokensOf = (server: { controller: JobController }) => (server.controller as unknown as { issuedTokens: Map<string, unknown> }).issuedTokens;
    await expect(b.controller.registerWorker({ workerId: w, sessionToken: 'a-stale-token', capacity: 1 }, channel)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    expect(tokensOf(b).has(w)).toBe(false);

    // A worker the first server provisioned registers with the other one (a shared address).
    await a.store.insertWorker({ id: 'w-first', provider: 'inproc', state: 'CREATING', capacity: 1, runningJobIds: [], labels: {}, createdAt: Date.now() });
    const otp = await new WorkerRegistry(a.store, systemClock, { otpTtlMs: 60_000 }).issueOtp('w-first');
    await b.controller.registerWorker({ workerId: 'w-first', otp, capacity: 1 }, channel);
    expect(tokensOf(b).has('w-first')).toBe(false);

    // The first server's worker reconnects to the other one, which ends it; its process's exit reaches the first.
    expect(tokensOf(a).has(w)).toBe(true);
    await b.controller.registerWorker({ workerId: w, sessionToken, capacity: 1, holdsPrefetchedJobs: true }, channel);
    await a.store.updateWorker(w, {}, { state: 'TERMINATED', endedReason: 'server shut down' });
    a.exit(w);
    await until(() => (tokensOf(a).has(w) ? undefined : true), 3_000);
  });

  it("is not swept by its first server: a job another server's claim gave it, not yet on the worker's record, stays assigned", async () => {
    const offset = { ms: 0 };
    const a = engine({ prefetch: 0, clock: { now: () => Date.now() + offset.ms } });
    await a.controller.start();
    const [first] = await a.queueAndWait(1, 1);
    const run = a.runs[0]!;
    await a.controller.jobFinished(run.workerId, first!, run.job.epoch, exited(0), 0, true);
    const { sessionToken, channel } = a.connected.get(run.workerId)!;
    await a.controller.workerDisconnected(run.workerId, channel);
    // It reconnects to another server (which issues it a new session token), and that server's claim gives it
    // a job, caught between the claim's two writes: ASSIGNED to the worker, not yet on its record.
    await new WorkerRegistry(a.store, systemClock, { otpTtlMs: 60_000 }).authenticate(run.workerId, { sessionToken });
    const at = Date.now();
    const assigned = { state: 'ASSIGNED' as const, attempt: 1, epoch: 1, createdAt: at, assignedAt: at };
    await a.store.insertJob({ ...assigned, id: 'job-claimed-there', spec: run.job.spec, workerId: run.workerId });
    // A job of a worker that is gone, which any server's sweep puts back (no worker may take it after): the sweep ran.
    await a.store.insertJob({ ...assigned, id: 'job-of-a-gone-worker', spec: { ...run.job.spec, labels: { pool: 'none' } }, workerId: 'w-gone' });
    offset.ms = 6_000; // past the sweep's 5 s period
    a.controller.wake();
    await until(async () => ((await a.store.getJob('job-of-a-gone-worker'))?.state === 'QUEUED' ? true : undefined));
    expect(await a.store.getJob('job-claimed-there')).toMatchObject({ state: 'ASSIGNED', workerId: run.workerId });
  });

  it('is still its first server\'s while it has reconnected nowhere, also when a heartbeat is written after its stream closed: a cancel waits for its return, a stop settles its jobs', async () => {
    const a = engine({ prefetch: 2 });
    await a.controller.start();
    await a.queueAndWait(3, 3);
    const [running, held, waiting] = a.runs;
    const w = running!.workerId;
    await a.controller.jobStarted(w, running!.job.id, running!.job.epoch);
    await a.controller.workerDisconnected(w, a.connected.get(w)!.channel);
    // A heartbeat that was on its way when the stream closed lands afterwards: no other server hears from the worker.
    await new Promise((resolve) => setTimeout(resolve, 5));
    await a.controller.heartbeat(w);
    expect(await a.controller.cancel(held!.job.id)).toMatchObject({ state: 'ASSIGNED', cancelRequestedAt: expect.any(Number) });
    await a.controller.stop();
    expect(await a.store.getJob(running!.job.id)).toMatchObject({ state: 'FAILED', failureReason: 'SHUTDOWN' });
    expect(await a.store.getJob(held!.job.id)).toMatchObject({ state: 'CANCELLED', attempt: 1 });
    expect(await a.store.getJob(waiting!.job.id)).toMatchObject({ state: 'QUEUED', attempt: 1 });
    expect(await a.store.getWorker(w)).toMatchObject({ state: 'TERMINATED' });
  });
});
