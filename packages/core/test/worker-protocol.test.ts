import { credentials, Server, ServerCredentials, type ClientDuplexStream } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient, createPlatform, HodeiError, MemoryStore, systemClock, type AuditEvent, type Clock, type Job, type JobGuard, type Logger, type CreateWorkerRequest, type NewLogLine, type NewLogLineBatch, type Platform, type Provider, type Store, type WorkerExit } from '../src';
import {
  JobOutcome,
  LogStream,
  packLogLines,
  JobServiceClient,
  JobServiceService,
  WorkerServiceClient,
  type Ack,
  type JobServiceServer,
  type RunReply,
  type ServerMessage,
  type WorkerMessage,
} from '../src/protocol';
import { WorkerRegistry } from '../src/engine/worker-registry';
import { createJobService } from '../src/server/job-service';
import { specToWire } from '../src/server/wire-mapping';
import { until, WritesHeld, type HeldWrite } from './in-process-worker';

/** A test for `WritesHeld.hold`: the writes of job `jobId`'s result. */
const resultOf = (jobId: string) => (write: HeldWrite) => write.method !== 'appendLogBatch' && write.jobId === jobId;

/** A provider that starts nothing: it hands the test the credentials a real worker would get. */
class HandOverProvider implements Provider {
  readonly specificationVersion = 'v1' as const;
  readonly name = 'hand-over';
  readonly capabilities: { maxWorkers: number; workerCapacity: number; labels: Record<string, string> };
  readonly requests: CreateWorkerRequest[] = [];
  readonly destroyed: string[] = [];
  private waiters: ((request: CreateWorkerRequest) => void)[] = [];
  constructor(maxWorkers = 2) {
    this.capabilities = { maxWorkers, workerCapacity: 1, labels: {} };
  }
  async createWorker(request: CreateWorkerRequest) {
    this.requests.push(request);
    this.waiters.shift()?.(request);
  }
  async destroyWorker(workerId: string) {
    this.destroyed.push(workerId);
  }
  onWorkerExit(_listener: (exit: WorkerExit) => void) {
    return () => undefined;
  }
  async close() {}
  nextRequest(): Promise<CreateWorkerRequest> {
    const ready = this.requests.shift();
    return ready ? Promise.resolve(ready) : new Promise((resolve) => this.waiters.push(resolve));
  }
}

/**
 * The Register message a worker sends first, with its one-time token or its session token; `readsRunJobAcks`
 * as a current worker says it (the default is an older worker's Register).
 */
function register(
  workerId: string,
  credentials: { otp?: string; sessionToken?: string },
  readsRunJobAcks = false,
  holdsPrefetchedJobs = false,
  ignoresRepeatedRuns = false,
): WorkerMessage['payload'] {
  return {
    $case: 'register',
    value: {
      workerId,
      otp: credentials.otp ?? '',
      sessionToken: credentials.sessionToken ?? '',
      capacity: 1,
      labels: {},
      version: 'test',
      readsRunJobAcks,
      holdsPrefetchedJobs,
      ignoresRepeatedRuns,
    },
  };
}

/** A LogBatch of stdout lines numbered from `firstSeq`. */
function logBatch(jobId: string, epoch: number, firstSeq: number, texts: string[], started = false, startedAgoMs = 0): WorkerMessage['payload'] {
  const entries = texts.map((text, index) => ({ seq: firstSeq + index, timestampMs: firstSeq + index, stream: LogStream.LOG_STREAM_STDOUT, text }));
  return { $case: 'logBatch', value: { jobId, epoch, lines: packLogLines(entries), started, pid: started ? 42 : 0, startedAgoMs } };
}

/** A JobFinished: exited with `exitCode`, after `lastLogSeq` lines; with `lines`, the run's last lines ride on it. */
function jobFinished(
  jobId: string,
  epoch: number,
  exitCode: number,
  lastLogSeq: number,
  durationMs = 1,
  carried: { lines?: { firstSeq: number; texts: string[] }; started?: boolean } = {},
): WorkerMessage['payload'] {
  const lines = carried.lines
    ? packLogLines(carried.lines.texts.map((text, index) => ({ seq: carried.lines!.firstSeq + index, timestampMs: 1, stream: LogStream.LOG_STREAM_STDOUT, text })))
    : undefined;
  return {
    $case: 'jobFinished',
    value: { jobId, epoch, outcome: JobOutcome.JOB_OUTCOME_EXITED, exitCode, signal: '', durationMs, errorMessage: '', lastLogSeq, started: carried.started ?? false, lines },
  };
}

/** The job once `client` sees it RUNNING (polled every few ms, up to `until`'s deadline). */
function runningJob(client: { get(id: string): Promise<Job> }, id: string): Promise<Job> {
  return until(async () => {
    const job = await client.get(id);
    return job.state === 'RUNNING' ? job : undefined;
  });
}

/** A worker speaking the protocol by hand. */
function connect(address: string) {
  const client = new WorkerServiceClient(address, credentials.createInsecure());
  const stream: ClientDuplexStream<WorkerMessage, ServerMessage> = client.connect();
  const inbox: ServerMessage[] = [];
  const acks: Ack[] = [];
  let wake: (() => void) | undefined;
  stream.on('data', (message: ServerMessage) => {
    inbox.push(message);
    wake?.();
  });
  stream.on('error', () => undefined);
  return {
    send: (payload: WorkerMessage['payload']) => stream.write({ payload }),
    async next(): Promise<ServerMessage> {
      while (inbox.length === 0) await new Promise<void>((resolve) => (wake = resolve));
      return inbox.shift()!;
    },
    /** The next message that is not an Ack (acks are collected in `acks`). */
    async nextCommand(): Promise<ServerMessage> {
      for (;;) {
        while (inbox.length === 0) await new Promise<void>((resolve) => (wake = resolve));
        const message = inbox.shift()!;
        if (message.payload?.$case !== 'ack') return message;
        acks.push(message.payload.value);
      }
    },
    /** Every Ack received so far. */
    acked(): Ack[] {
      return [...acks, ...inbox.flatMap((m) => (m.payload?.$case === 'ack' ? [m.payload.value] : []))];
    },
    /** Waits for the `nth` Ack matching `predicate` (counting those received so far), and returns it. */
    async ack(predicate: (ack: Ack) => boolean, nth = 1): Promise<Ack> {
      for (;;) {
        const found = [...acks, ...inbox.flatMap((m) => (m.payload?.$case === 'ack' ? [m.payload.value] : []))].filter(predicate)[nth - 1];
        if (found) return found;
        await new Promise<void>((resolve) => (wake = resolve));
      }
    },
    close: () => {
      stream.end();
      client.close();
    },
  };
}

/** A MemoryStore that counts the reads of a job (getJob and getJobAndLogCount). */
class ReadCountingStore extends MemoryStore {
  reads = 0;
  override async getJob(id: string): Promise<Job | undefined> {
    this.reads += 1;
    return super.getJob(id);
  }
  override async getJobAndLogCount(id: string) {
    this.reads += 1;
    return super.getJobAndLogCount(id);
  }
}

describe('worker protocol over real gRPC', () => {
  let platform: Platform | undefined;
  afterEach(async () => platform?.close());

  async function start(options: { heartbeatTimeoutMs?: number; store?: Store; logger?: Logger; clock?: Clock; prefetch?: number; maxWorkers?: number } = {}) {
    const { maxWorkers, ...platformOptions } = options;
    const provider = new HandOverProvider(maxWorkers);
    platform = await createPlatform({ providers: [provider], ...platformOptions });
    return { platform, provider };
  }

  /** The first worker the provider is asked for registers with its OTP and receives the queued job. */
  /** The job of the next RunJob the worker gets (acks in between are collected). */
  async function nextRun(worker: ReturnType<typeof connect>): Promise<{ id: string; epoch: number }> {
    const message = (await worker.nextCommand()).payload;
    if (message?.$case !== 'runJob') throw new Error(`expected runJob, got ${message?.$case}`);
    return { id: message.value.jobId, epoch: message.value.epoch };
  }

  async function registerAndTakeJob(provider: HandOverProvider, readsRunJobAcks = false) {
    const request = await provider.nextRequest();
    const first = connect(request.serverAddress);
    first.send(register(request.workerId, { otp: request.otp }, readsRunJobAcks));
    const registered = await first.next();
    const run = await first.next();
    if (registered.payload?.$case !== 'registered' || run.payload?.$case !== 'runJob') throw new Error('unexpected messages');
    return { request, first, sessionToken: registered.payload.value.sessionToken, epoch: run.payload.value.epoch };
  }

  it('registers with the OTP, runs a job, stores its logs and result', async () => {
    const { platform, provider } = await start();
    const job = await platform.client.queue({ name: 'j', command: 'echo hi' });
    const request = await provider.nextRequest();
    expect(request.serverAddress).toBe(platform.address);
    const worker = connect(request.serverAddress);
    worker.send(register(request.workerId, { otp: request.otp }));
    expect((await worker.next()).payload).toMatchObject({ $case: 'registered' });
    const run = (await worker.next()).payload;
    if (run?.$case !== 'runJob') throw new Error(`expected runJob, got ${run?.$case}`);
    expect(run.value).toMatchObject({ jobId: job.id, epoch: 1, attempt: 1, spec: { command: 'echo hi' } });
    expect(run.value.firstLogSeq).toBe(1);
    worker.send(logBatch(job.id, 1, 1, ['hi'], true));
    expect(await worker.ack(() => true)).toEqual({ jobId: job.id, epoch: 1, logSeq: 1, finished: false });
    expect((await platform.client.get(job.id)).state).toBe('RUNNING');
    worker.send(jobFinished(job.id, 1, 0, 1, 3));
    expect(await platform.client.wait(job.id)).toMatchObject({ state: 'SUCCEEDED', exitCode: 0, durationMs: 3 });
    expect(await worker.ack((ack) => ack.finished)).toEqual({ jobId: job.id, epoch: 1, logSeq: 1, finished: true });
    const lines = [];
    for await (const line of platform.client.logs(job.id)) lines.push(line);
    expect(lines).toEqual([{ seq: 1, timestamp: 1, stream: 'stdout', text: 'hi' }]);
    const events = (await platform.store.listAudit(job.id)).map((event) => event.eventType);
    expect(events).toEqual(['job.queued', 'job.assigned', 'job.started', 'job.finished']);
    worker.close();
  });

  it('refuses a reused OTP and an OTP presented with another worker id', async () => {
    const { platform, provider } = await start();
    await platform.client.queue({ name: 'j', command: 'true' });
    const request = await provider.nextRequest();
    const impostor = connect(request.serverAddress);
    impostor.send(register('w-other', { otp: request.otp }));
    expect((await impostor.next()).payload).toMatchObject({ $case: 'refused', value: { code: 'UNAUTHENTICATED' } });
    const genuine = connect(request.serverAddress);
    genuine.send(register(request.workerId, { otp: request.otp }));
    expect((await genuine.next()).payload).toMatchObject({ $case: 'registered' });
    const replay = connect(request.serverAddress);
    replay.send(register(request.workerId, { otp: request.otp }));
    expect((await replay.next()).payload).toMatchObject({ $case: 'refused' });
    expect((await platform.store.listAudit('w-other')).map((event) => event.eventType)).toContain('worker.refused');
    for (const worker of [impostor, genuine, replay]) worker.close();
  });

  it('fences a stale epoch: logs and results of an older lease are refused', async () => {
    const { platform, provider } = await start();
    const job = await platform.client.queue({ name: 'j', command: 'true' });
    const request = await provider.nextRequest();
    const worker = connect(request.serverAddress);
    worker.send(register(request.workerId, { otp: request.otp }));
    await worker.next();
    await worker.next();
    worker.send(logBatch(job.id, 0, 1, ['stale']));
    worker.send(jobFinished(job.id, 0, 0, 1));
    worker.send(logBatch(job.id, 1, 1, ['fresh']));
    worker.send(jobFinished(job.id, 1, 3, 1));
    expect(await platform.client.wait(job.id)).toMatchObject({ state: 'FAILED', exitCode: 3 });
    const texts = [];
    for await (const line of platform.client.logs(job.id)) texts.push(line.text);
    expect(texts).toEqual(['fresh']);
    worker.close();
  });

  it('marks a worker whose stream closes mid-job LOST after the heartbeat timeout, not at once, and fails its job with WORKER_LOST', async () => {
    const { platform, provider } = await start({ heartbeatTimeoutMs: 1_000 });
    const job = await platform.client.queue({ name: 'j', command: 'sleep 100' });
    const request = await provider.nextRequest();
    const worker = connect(request.serverAddress);
    worker.send(register(request.workerId, { otp: request.otp }));
    await worker.next();
    await worker.next();
    const closedAt = Date.now();
    worker.close();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await platform.store.getWorker(request.workerId))?.state).toBe('BUSY');
    expect((await platform.client.get(job.id)).state).toBe('ASSIGNED');
    expect(await platform.client.wait(job.id)).toMatchObject({ state: 'FAILED', failureReason: 'WORKER_LOST' });
    expect(Date.now() - closedAt).toBeGreaterThanOrEqual(900);
    expect((await platform.store.getWorker(request.workerId))?.state).toBe('LOST');
    expect(provider.destroyed).toContain(request.workerId);
  });

  it('lets a worker whose stream broke reconnect with its session token, keep its job and land the result', async () => {
    const { platform, provider } = await start({ heartbeatTimeoutMs: 5_000 });
    const job = await platform.client.queue({ name: 'j', command: 'long' });
    const { request, first, sessionToken, epoch } = await registerAndTakeJob(provider);
    first.send(logBatch(job.id, epoch, 1, ['before'], true));
    await first.ack((ack) => ack.logSeq === 1);
    first.close();
    await new Promise((resolve) => setTimeout(resolve, 100));

    // The one-time token is spent: only the session token lets it back in.
    const replay = connect(request.serverAddress);
    replay.send(register(request.workerId, { otp: request.otp }));
    expect((await replay.next()).payload?.$case).toBe('refused');
    replay.close();

    const second = connect(request.serverAddress);
    second.send(register(request.workerId, { sessionToken }));
    expect((await second.next()).payload?.$case).toBe('registered');
    expect((await platform.store.getWorker(request.workerId))?.state).toBe('BUSY');
    // A batch overlapping what is stored (by seq): the lines already stored are skipped.
    second.send(logBatch(job.id, epoch, 1, ['before', 'after'], true));
    second.send(jobFinished(job.id, epoch, 0, 2, 5));
    expect(await platform.client.wait(job.id)).toMatchObject({ state: 'SUCCEEDED', attempt: 1 });
    const texts = [];
    for await (const line of platform.client.logs(job.id)) texts.push(line.text);
    expect(texts).toEqual(['before', 'after']);
    second.close();
  });

  it('sends a reconnected worker that ignores repeated runs the RunJob of its job that did not start (it may have been lost with the stream)', async () => {
    const { platform, provider } = await start({ heartbeatTimeoutMs: 5_000 });
    const job = await platform.client.queue({ name: 'j', command: 'true' });
    // The RunJob was written to the stream, which broke before the worker read it: the worker never reports.
    const { request, first, sessionToken, epoch } = await registerAndTakeJob(provider);
    first.close();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const second = connect(request.serverAddress);
    second.send(register(request.workerId, { sessionToken }, false, false, true));
    expect((await second.next()).payload?.$case).toBe('registered');
    expect(await nextRun(second)).toEqual({ id: job.id, epoch });
    second.send(jobFinished(job.id, epoch, 0, 0, 1, { started: true }));
    expect(await platform.client.wait(job.id)).toMatchObject({ state: 'SUCCEEDED', attempt: 1 });
    second.close();
  });

  it("tells a worker to stop a job it says it runs (a heartbeat) that another server ended meanwhile", async () => {
    const { platform, provider } = await start();
    const job = await platform.client.queue({ name: 'j', command: 'sleep 60' });
    const { first, epoch } = await registerAndTakeJob(provider);
    first.send(logBatch(job.id, epoch, 1, [], true));
    await first.ack((ack) => ack.jobId === job.id);
    // Another server sharing the store cancels it (it has no stream to the worker); the job prints nothing.
    await platform.store.updateJob(job.id, { states: ['RUNNING'] }, { state: 'CANCELLED', completedAt: Date.now() });
    first.send({ $case: 'heartbeat', value: { runningJobIds: [job.id] } });
    expect((await first.nextCommand()).payload).toMatchObject({ $case: 'cancelJob', value: { jobId: job.id } });
    first.close();
  });

  it('tells a reconnected worker to drop a job that moved on while it was away', async () => {
    const { platform, provider } = await start({ heartbeatTimeoutMs: 5_000 });
    const job = await platform.client.queue({ name: 'j', command: 'long' });
    const { request, first, sessionToken, epoch } = await registerAndTakeJob(provider);
    first.close();
    await new Promise((resolve) => setTimeout(resolve, 100));
    // The worker reconnected to another server sharing the store (which issued it a new session token): a cancel
    // here cannot wait for the worker to come back, and ends the job at once.
    const otherServer = new WorkerRegistry(platform.store, systemClock, { otpTtlMs: 60_000 });
    const tokenThere = await otherServer.authenticate(request.workerId, { sessionToken });
    expect(await platform.client.cancel(job.id)).toMatchObject({ state: 'CANCELLED' });
    expect(await platform.client.wait(job.id)).toMatchObject({ state: 'CANCELLED' });

    const second = connect(request.serverAddress);
    second.send(register(request.workerId, { sessionToken: tokenThere }));
    expect((await second.next()).payload?.$case).toBe('registered');
    second.send(logBatch(job.id, epoch, 1, ['late']));
    const answer = await second.next();
    expect(answer.payload).toMatchObject({ $case: 'cancelJob', value: { jobId: job.id } });
    const texts = [];
    for await (const line of platform.client.logs(job.id)) texts.push(line.text);
    expect(texts).not.toContain('late');
    second.close();
  });

  it('sends a reconnected worker the cancel requested while it was away; the job keeps its place on the worker until it reports', async () => {
    const { platform, provider } = await start({ heartbeatTimeoutMs: 5_000 });
    const job = await platform.client.queue({ name: 'j', command: 'long' });
    const { request, first, sessionToken, epoch } = await registerAndTakeJob(provider);
    first.close();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await platform.client.cancel(job.id)).toMatchObject({ state: 'ASSIGNED' });
    expect(await platform.store.getJob(job.id)).toMatchObject({ cancelRequestedAt: expect.any(Number) });
    expect(await platform.store.getWorker(request.workerId)).toMatchObject({ runningJobIds: [job.id] });

    const second = connect(request.serverAddress);
    second.send(register(request.workerId, { sessionToken }));
    expect((await second.next()).payload?.$case).toBe('registered');
    expect((await second.next()).payload).toMatchObject({ $case: 'cancelJob', value: { jobId: job.id } });
    second.send({
      $case: 'jobFinished',
      value: { jobId: job.id, epoch, outcome: JobOutcome.JOB_OUTCOME_CANCELLED, exitCode: -1, signal: 'SIGTERM', durationMs: 5, errorMessage: '', lastLogSeq: 0, started: true, lines: undefined },
    });
    expect(await platform.client.wait(job.id)).toMatchObject({ state: 'CANCELLED' });
    expect(await platform.store.getWorker(request.workerId)).toMatchObject({ runningJobIds: [] });
    second.close();
  });

  it('refuses the reconnection of a worker the heartbeat timeout already marked LOST', async () => {
    const { platform, provider } = await start({ heartbeatTimeoutMs: 600 });
    await platform.client.queue({ name: 'j', command: 'long' });
    const { request, first, sessionToken } = await registerAndTakeJob(provider);
    first.close();
    const deadline = Date.now() + 5_000;
    while ((await platform.store.getWorker(request.workerId))?.state !== 'LOST') {
      if (Date.now() > deadline) throw new Error('the worker was never marked LOST');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const second = connect(request.serverAddress);
    second.send(register(request.workerId, { sessionToken }));
    expect((await second.next()).payload?.$case).toBe('refused');
    second.close();
  });

  /** Every stored line of the job, as `seq:text`. */
  async function storedLines(platform: Platform, jobId: string): Promise<string[]> {
    return (await platform.store.readLogs(jobId, 1, 1_000)).map((line) => `${line.seq}:${line.text}`);
  }

  it('the stream breaks mid-job: the worker resends what was not acknowledged and every line lands once, in order', async () => {
    const { platform, provider } = await start({ heartbeatTimeoutMs: 5_000 });
    const job = await platform.client.queue({ name: 'j', command: 'long' });
    const { request, first, sessionToken, epoch } = await registerAndTakeJob(provider);
    first.send(logBatch(job.id, epoch, 1, ['a', 'b', 'c'], true));
    first.send(logBatch(job.id, epoch, 4, ['d', 'e', 'f']));
    await first.ack((ack) => ack.logSeq === 6);
    // In flight when the stream breaks: the worker cannot know whether it was stored.
    first.send(logBatch(job.id, epoch, 7, ['g', 'h']));
    first.close();

    const second = connect(request.serverAddress);
    second.send(register(request.workerId, { sessionToken }));
    expect((await second.next()).payload?.$case).toBe('registered');
    // It sends every unacknowledged report again, then goes on.
    second.send(logBatch(job.id, epoch, 7, ['g', 'h'], true));
    second.send(logBatch(job.id, epoch, 9, ['i']));
    second.send(jobFinished(job.id, epoch, 0, 9));
    expect(await platform.client.wait(job.id)).toMatchObject({ state: 'SUCCEEDED' });
    expect(await second.ack((ack) => ack.finished)).toMatchObject({ jobId: job.id, epoch, logSeq: 9 });
    expect(await storedLines(platform, job.id)).toEqual(['1:a', '2:b', '3:c', '4:d', '5:e', '6:f', '7:g', '8:h', '9:i']);
    second.close();
  });

  it('stores nothing after a missing batch, and records a result only once every line is stored', async () => {
    const { platform, provider } = await start({ heartbeatTimeoutMs: 5_000 });
    const job = await platform.client.queue({ name: 'j', command: 'long' });
    const { first, epoch } = await registerAndTakeJob(provider);
    first.send(logBatch(job.id, epoch, 1, ['a'], true));
    await first.ack((ack) => ack.logSeq === 1);
    // Batch 2-3 got lost: 4-5 and the result must wait for it.
    first.send(logBatch(job.id, epoch, 4, ['d', 'e']));
    first.send(jobFinished(job.id, epoch, 0, 5));
    first.send(logBatch(job.id, epoch, 1, ['a']));
    // Answered in order: once the resent batch 1 is acknowledged again, the gap and the result were handled.
    await first.ack((ack) => ack.logSeq === 1, 2);
    expect(first.acked().filter((ack) => ack.logSeq > 1 || ack.finished)).toEqual([]);
    expect((await platform.client.get(job.id)).state).toBe('RUNNING');
    expect(await storedLines(platform, job.id)).toEqual(['1:a']);
    // The resend fills the gap; the result follows.
    first.send(logBatch(job.id, epoch, 2, ['b', 'c']));
    first.send(logBatch(job.id, epoch, 4, ['d', 'e']));
    first.send(jobFinished(job.id, epoch, 0, 5));
    expect(await first.ack((ack) => ack.finished)).toMatchObject({ logSeq: 5 });
    expect(await platform.client.wait(job.id)).toMatchObject({ state: 'SUCCEEDED' });
    expect(await storedLines(platform, job.id)).toEqual(['1:a', '2:b', '3:c', '4:d', '5:e']);
    first.close();
  });

  /**
   * A worker granted a prefetch of 1 (the only worker: `maxWorkers` 1) registered on `store` and holding jobs `a`
   * and `b`, queued in that order: the stream, its Registered, and the two runs it was sent.
   */
  async function twoJobsOnOneWorker(store: Store, options: { readsRunJobAcks?: boolean; heartbeatTimeoutMs?: number } = {}) {
    const { platform, provider } = await start({ store, prefetch: 1, maxWorkers: 1, ...(options.heartbeatTimeoutMs ? { heartbeatTimeoutMs: options.heartbeatTimeoutMs } : {}) });
    const a = await platform.client.queue({ name: 'a', command: 'true' });
    const b = await platform.client.queue({ name: 'b', command: 'true' });
    const request = await provider.nextRequest();
    const worker = connect(request.serverAddress);
    worker.send(register(request.workerId, { otp: request.otp }, options.readsRunJobAcks ?? false, true));
    const registered = (await worker.next()).payload;
    if (registered?.$case !== 'registered') throw new Error(`expected registered, got ${registered?.$case}`);
    const runs = [await nextRun(worker), await nextRun(worker)];
    expect(runs.map((run) => run.id)).toEqual([a.id, b.id]);
    return { platform, request, worker, sessionToken: registered.value.sessionToken, a, b, runs };
  }

  it("records a worker's results side by side: one whose write is slow holds up neither another job's result nor its ack", async () => {
    const store = new WritesHeld();
    const { platform, worker, a, b, runs } = await twoJobsOnOneWorker(store);
    store.hold(resultOf(a.id));
    worker.send(jobFinished(a.id, runs[0]!.epoch, 0, 0, 1, { started: true }));
    worker.send(jobFinished(b.id, runs[1]!.epoch, 0, 0, 1, { started: true }));
    expect(await worker.ack((ack) => ack.finished && ack.jobId === b.id)).toMatchObject({ jobId: b.id });
    expect(await platform.client.get(b.id)).toMatchObject({ state: 'SUCCEEDED' });
    expect(worker.acked().filter((ack) => ack.jobId === a.id && ack.finished)).toEqual([]);
    store.release();
    expect(await worker.ack((ack) => ack.finished && ack.jobId === a.id)).toMatchObject({ jobId: a.id });
    expect(await platform.client.get(a.id)).toMatchObject({ state: 'SUCCEEDED' });
    worker.close();
  });

  it("keeps a job's reports in order while another job's result is recorded: its result needs no resend", async () => {
    const store = new WritesHeld();
    const { platform, worker, a, b, runs } = await twoJobsOnOneWorker(store);
    store.hold((write) => write.method === 'appendLogBatch' && write.jobId === a.id);
    worker.send(logBatch(a.id, runs[0]!.epoch, 1, ['one'], true));
    await until(() => (store.held > 0 ? true : undefined));
    worker.send(logBatch(a.id, runs[0]!.epoch, 2, ['two']));
    worker.send(logBatch(a.id, runs[0]!.epoch, 3, ['three']));
    worker.send(jobFinished(a.id, runs[0]!.epoch, 0, 3));
    worker.send(jobFinished(b.id, runs[1]!.epoch, 0, 0, 1, { started: true }));
    expect(await worker.ack((ack) => ack.finished && ack.jobId === b.id)).toMatchObject({ jobId: b.id });
    store.release();
    // Nothing is sent again: each of a's reports is handled once the one before it is stored.
    expect(await worker.ack((ack) => ack.finished && ack.jobId === a.id)).toMatchObject({ jobId: a.id, logSeq: 3 });
    const texts = [];
    for await (const line of platform.client.logs(a.id)) texts.push(line.text);
    expect(texts).toEqual(['one', 'two', 'three']);
    worker.close();
  });

  it("sends no job into a stream that ended while a report was being recorded: the worker gets it once it reconnects", async () => {
    const store = new WritesHeld();
    const { platform, request, worker: first, sessionToken, a, runs } = await twoJobsOnOneWorker(store, { readsRunJobAcks: true, heartbeatTimeoutMs: 30_000 });
    // a ends and its result's write is slow; the stream ends meanwhile (the worker still runs b).
    store.hold(resultOf(a.id));
    first.send(jobFinished(a.id, runs[0]!.epoch, 0, 0, 1, { started: true }));
    await until(() => (store.held > 0 ? true : undefined));
    first.close();
    await until(async () => ((await platform.store.listAudit(request.workerId)).some((event) => event.eventType === 'worker.disconnected') ? true : undefined));
    // A job queued now, while the worker has room (a's place) but no stream: not sent into the ended one.
    const c = await platform.client.queue({ name: 'c', command: 'true' });
    store.release();
    await until(async () => ((await platform.client.get(a.id)).state === 'SUCCEEDED' ? true : undefined));
    const second = connect(request.serverAddress);
    second.send(register(request.workerId, { sessionToken }, true, true));
    expect((await second.next()).payload?.$case).toBe('registered');
    expect(await nextRun(second)).toMatchObject({ id: c.id });
    second.close();
  });

  it('acknowledges nothing while the store refuses lines, and stores each line once when the worker resends', async () => {
    class FlakyStore extends MemoryStore {
      down = true;
      refused = 0;
      override async appendLogs(jobId: string, lines: readonly NewLogLine[]): Promise<number> {
        if (this.down && lines.length > 0) {
          this.refused += 1;
          throw new Error('database unavailable');
        }
        return super.appendLogs(jobId, lines);
      }
      override async appendLogBatch(jobId: string, batch: NewLogLineBatch): Promise<number> {
        if (this.down && batch.textLengths.length > 0) {
          this.refused += 1;
          throw new Error('database unavailable');
        }
        return super.appendLogBatch(jobId, batch);
      }
    }
    const store = new FlakyStore();
    const { platform, provider } = await start({ heartbeatTimeoutMs: 5_000, store });
    const job = await platform.client.queue({ name: 'j', command: 'long' });
    const { first, epoch } = await registerAndTakeJob(provider);
    first.send(logBatch(job.id, epoch, 1, ['a', 'b'], true));
    first.send(logBatch(job.id, epoch, 3, ['c']));
    first.send(jobFinished(job.id, epoch, 0, 3));
    const deadline = Date.now() + 5_000;
    while (store.refused === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(store.refused).toBeGreaterThan(0);
    expect(first.acked()).toEqual([]);
    expect(await storedLines(platform, job.id)).toEqual([]);
    expect((await platform.client.get(job.id)).state).toBe('RUNNING');
    store.down = false;
    // The worker resends everything unacknowledged.
    first.send(logBatch(job.id, epoch, 1, ['a', 'b']));
    first.send(logBatch(job.id, epoch, 3, ['c']));
    first.send(jobFinished(job.id, epoch, 0, 3));
    expect(await first.ack((ack) => ack.finished)).toMatchObject({ logSeq: 3 });
    expect(await platform.client.wait(job.id)).toMatchObject({ state: 'SUCCEEDED' });
    expect(await storedLines(platform, job.id)).toEqual(['1:a', '2:b', '3:c']);
    first.close();
  });

  it('logs a warning naming the job when a report cannot be recorded, and acknowledges nothing', async () => {
    class BrokenStartStore extends MemoryStore {
      override async updateJob(id: string, guard: JobGuard, patch: Partial<Job>, audit?: AuditEvent) {
        if (patch.state === 'RUNNING') throw new Error('disk full');
        return super.updateJob(id, guard, patch, audit);
      }
    }
    const warnings: { object: Record<string, unknown>; message: string }[] = [];
    const logger: Logger = { debug() {}, info() {}, warn: (object, message) => warnings.push({ object, message }), error() {} };
    const { platform, provider } = await start({ heartbeatTimeoutMs: 5_000, store: new BrokenStartStore(), logger });
    const job = await platform.client.queue({ name: 'j', command: 'long' });
    const { first, epoch } = await registerAndTakeJob(provider);
    first.send(logBatch(job.id, epoch, 1, ['a'], true));
    const deadline = Date.now() + 4_000;
    while (!warnings.some((w) => w.object.jobId === job.id) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    const warning = warnings.find((w) => w.object.jobId === job.id);
    expect(warning?.message).toContain(`job ${job.id}: disk full`);
    expect(first.acked()).toEqual([]);
    first.close();
  });

  it("logs a store failure while a worker's stream ends (its disconnection not recorded) instead of leaving it unhandled", async () => {
    class FailingStore extends MemoryStore {
      down = false;
      override async appendAudit(event: AuditEvent) {
        if (this.down) throw new Error('database unavailable');
        return super.appendAudit(event);
      }
    }
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const store = new FailingStore();
      const warnings: { object: Record<string, unknown>; message: string }[] = [];
      const logger: Logger = { debug() {}, info() {}, warn: (object, message) => warnings.push({ object, message }), error() {} };
      const { platform, provider } = await start({ heartbeatTimeoutMs: 5_000, store, logger });
      await platform.client.queue({ name: 'j', command: 'long' });
      const { request, first } = await registerAndTakeJob(provider);
      store.down = true;
      first.close();
      const warning = await until(() => warnings.find((w) => w.object.workerId === request.workerId && /disconnect/.test(w.message)), 3_000);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(unhandled).toEqual([]);
      expect(warning.message).toContain('database unavailable');
      store.down = false;
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('numbers a retried run after the lines of the earlier attempt', async () => {
    const { platform, provider } = await start({ heartbeatTimeoutMs: 5_000 });
    const job = await platform.client.queue({ name: 'j', command: 'flaky', maxAttempts: 2, retryOnExitCodes: [1] });
    const { first, epoch } = await registerAndTakeJob(provider);
    first.send(logBatch(job.id, epoch, 1, ['try 1'], true));
    first.send(jobFinished(job.id, epoch, 1, 1));
    const rerun = await first.nextCommand();
    if (rerun.payload?.$case !== 'runJob') throw new Error(`expected runJob, got ${rerun.payload?.$case}`);
    expect(rerun.payload.value).toMatchObject({ jobId: job.id, attempt: 2, firstLogSeq: 2 });
    const second = rerun.payload.value.epoch;
    first.send(logBatch(job.id, second, 2, ['try 2'], true));
    first.send(jobFinished(job.id, second, 0, 2));
    expect(await platform.client.wait(job.id)).toMatchObject({ state: 'SUCCEEDED', attempt: 2 });
    expect(await storedLines(platform, job.id)).toEqual(['1:try 1', '2:try 2']);
    first.close();
  });

  it('skips lines already stored by another server on the same store (the filter is the store, not an engine)', async () => {
    const store = new MemoryStore();
    const { platform: first, provider } = await start({ heartbeatTimeoutMs: 10_000, store });
    const job = await first.client.queue({ name: 'j', command: 'long' });
    const { request, first: stream, sessionToken, epoch } = await registerAndTakeJob(provider);
    stream.send(logBatch(job.id, epoch, 1, ['a', 'b'], true));
    await stream.ack((ack) => ack.logSeq === 2);
    // The same lines again, unacknowledged as far as the worker knows, then its stream breaks.
    stream.send(logBatch(job.id, epoch, 3, ['c']));
    stream.close();

    const second = await createPlatform({ providers: [new HandOverProvider()], store, heartbeatTimeoutMs: 10_000 });
    try {
      const again = connect(second.address);
      again.send(register(request.workerId, { sessionToken }));
      expect((await again.nextCommand()).payload?.$case).toBe('registered');
      again.send(logBatch(job.id, epoch, 1, ['a', 'b']));
      again.send(logBatch(job.id, epoch, 3, ['c']));
      again.send(logBatch(job.id, epoch, 4, ['d']));
      again.send(jobFinished(job.id, epoch, 0, 4));
      expect(await again.ack((ack) => ack.finished)).toMatchObject({ logSeq: 4 });
      expect(await storedLines(second, job.id)).toEqual(['1:a', '2:b', '3:c', '4:d']);
      again.close();
    } finally {
      await second.close();
    }
  });

  it('stores the lines a result carries before the result, and acknowledges both at once', async () => {
    const { platform, provider } = await start();
    const job = await platform.client.queue({ name: 'j', command: 'echo a; echo b' });
    const request = await provider.nextRequest();
    const worker = connect(request.serverAddress);
    worker.send(register(request.workerId, { otp: request.otp }));
    expect((await worker.next()).payload).toMatchObject({ $case: 'registered', value: { readsJobFinishedLines: true } });
    expect((await worker.next()).payload?.$case).toBe('runJob');
    // A short job's whole run in one report: its start, its lines and its result.
    worker.send(jobFinished(job.id, 1, 0, 2, 1, { lines: { firstSeq: 1, texts: ['a', 'b'] }, started: true }));
    expect(await platform.client.wait(job.id)).toMatchObject({ state: 'SUCCEEDED', exitCode: 0 });
    expect(await worker.ack((ack) => ack.finished)).toEqual({ jobId: job.id, epoch: 1, logSeq: 2, finished: true });
    expect(await storedLines(platform, job.id)).toEqual(['1:a', '2:b']);
    const events = (await platform.store.listAudit(job.id)).map((event) => event.eventType);
    expect(events).toEqual(['job.queued', 'job.assigned', 'job.started', 'job.finished']);
    worker.close();
  });

  it('reads the job once for a result that carries its lines (for both the lines and the result)', async () => {
    const store = new ReadCountingStore();
    const { platform, provider } = await start({ store });
    const job = await platform.client.queue({ name: 'j', command: 'echo a; echo b' });
    const { first, epoch } = await registerAndTakeJob(provider);
    store.reads = 0;
    first.send(jobFinished(job.id, epoch, 0, 2, 1, { lines: { firstSeq: 1, texts: ['a', 'b'] }, started: true }));
    expect(await first.ack((ack) => ack.finished)).toEqual({ jobId: job.id, epoch, logSeq: 2, finished: true });
    expect(store.reads).toBe(1);
    expect((await platform.store.getJob(job.id))?.state).toBe('SUCCEEDED');
    expect(await storedLines(platform, job.id)).toEqual(['1:a', '2:b']);
    first.close();
  });

  it("gives a wait woken by the job's end the job as the engine recorded it, without reading it again", async () => {
    const store = new ReadCountingStore();
    const { platform, provider } = await start({ store });
    const job = await platform.client.queue({ name: 'j', command: 'true' });
    const { first, epoch } = await registerAndTakeJob(provider);
    const waited = platform.client.wait(job.id);
    // The wait reads the job once when it starts.
    while (store.reads === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    store.reads = 0;
    first.send(jobFinished(job.id, epoch, 0, 0, 1, { started: true }));
    expect(await waited).toMatchObject({ id: job.id, state: 'SUCCEEDED', exitCode: 0, startedAt: expect.any(Number), completedAt: expect.any(Number) });
    // The result's own read; none by the wait.
    expect(store.reads).toBe(1);
    expect(await platform.client.get(job.id)).toEqual(await waited);
    first.close();
  });

  it('does not record nor acknowledge a result whose lines follow a missing batch', async () => {
    const { platform, provider } = await start({ heartbeatTimeoutMs: 5_000 });
    const job = await platform.client.queue({ name: 'j', command: 'long' });
    const { first, epoch } = await registerAndTakeJob(provider);
    // Lines 1-2 got lost; the result carries 3-4.
    first.send(jobFinished(job.id, epoch, 0, 4, 1, { lines: { firstSeq: 3, texts: ['c', 'd'] }, started: true }));
    first.send(logBatch(job.id, epoch, 1, ['a', 'b'], true));
    // Answered in order: once 1-2 are acknowledged, the result was handled, and refused.
    await first.ack((ack) => ack.logSeq === 2);
    expect(first.acked().filter((ack) => ack.finished || ack.logSeq > 2)).toEqual([]);
    expect((await platform.client.get(job.id)).state).toBe('RUNNING');
    expect(await storedLines(platform, job.id)).toEqual(['1:a', '2:b']);
    // Resent, it lands.
    first.send(jobFinished(job.id, epoch, 0, 4, 1, { lines: { firstSeq: 3, texts: ['c', 'd'] } }));
    expect(await first.ack((ack) => ack.finished)).toMatchObject({ logSeq: 4 });
    expect(await platform.client.wait(job.id)).toMatchObject({ state: 'SUCCEEDED' });
    expect(await storedLines(platform, job.id)).toEqual(['1:a', '2:b', '3:c', '4:d']);
    first.close();
  });

  it('gives a worker that reads RunJob acks the ack of its result with its next job, or alone when none follows', async () => {
    const { platform, provider } = await start();
    const jobs = [await platform.client.queue({ name: 'a', command: 'true' })];
    const { first } = await registerAndTakeJob(provider, true);
    jobs.push(await platform.client.queue({ name: 'b', command: 'true' }), await platform.client.queue({ name: 'c', command: 'true' }));
    const carried: Ack[] = [];
    for (const [index, job] of jobs.entries()) {
      first.send(jobFinished(job.id, 1, 0, 0, 1, { started: true }));
      if (index === jobs.length - 1) break;
      const next = (await first.nextCommand()).payload;
      if (next?.$case !== 'runJob') throw new Error(`expected runJob, got ${next?.$case}`);
      expect(next.value.jobId).toBe(jobs[index + 1]!.id);
      carried.push(...next.value.acks);
    }
    // The last result has no job to ride on: its ack comes alone, soon.
    expect(await first.ack((ack) => ack.jobId === jobs[2]!.id)).toEqual({ jobId: jobs[2]!.id, epoch: 1, logSeq: 0, finished: true });
    // Each earlier result was acknowledged once, on the next RunJob (or alone, had that come late).
    for (const job of jobs.slice(0, 2)) {
      const acks = [...carried, ...first.acked()].filter((ack) => ack.jobId === job.id);
      expect(acks).toEqual([{ jobId: job.id, epoch: 1, logSeq: 0, finished: true }]);
    }
    expect(carried.length).toBeGreaterThan(0);
    for (const job of jobs) expect((await platform.client.get(job.id)).state).toBe('SUCCEEDED');
    first.close();
  });

  it('records a start reported some time after the spawn that much earlier, never before the job was sent', async () => {
    const { platform, provider } = await start();
    const job = await platform.client.queue({ name: 'a', command: 'sleep 1' });
    const { first, epoch } = await registerAndTakeJob(provider);
    await new Promise((resolve) => setTimeout(resolve, 150));
    const sent = Date.now();
    first.send(logBatch(job.id, epoch, 1, ['a'], true, 100));
    const running = await runningJob(platform.client, job.id);
    const seen = Date.now();
    expect(running.startedAt!).toBeGreaterThanOrEqual(sent - 100 - 2);
    expect(running.startedAt!).toBeLessThanOrEqual(seen - 100);
    // Its audit event says the same time.
    const audited = (await platform.controller.store.listAudit(job.id)).filter((event) => event.eventType === 'job.started');
    expect(audited.map((event) => event.occurredAt)).toEqual([running.startedAt]);

    // A start said to be long before the job was even sent is recorded no earlier than its sending.
    const second = await platform.client.queue({ name: 'b', command: 'sleep 1' });
    first.send(jobFinished(job.id, epoch, 0, 1));
    const next = (await first.nextCommand()).payload;
    if (next?.$case !== 'runJob') throw new Error(`expected runJob, got ${next?.$case}`);
    const secondReceived = Date.now();
    first.send(logBatch(second.id, next.value.epoch, 1, ['b'], true, 60_000));
    const secondRunning = await runningJob(platform.client, second.id);
    expect(secondRunning.startedAt!).toBeGreaterThanOrEqual(second.createdAt);
    // The send time is measured on the performance clock and rounded to the millisecond, the test's on Date.now():
    // the two whole-millisecond readings of one instant may be 1 ms apart.
    expect(secondRunning.startedAt!).toBeLessThanOrEqual(secondReceived + 1);
    first.close();
  });

  /**
   * A job assigned and sent to a worker (its RunJob), after which the engine's clock steps 10 s forward: by the
   * monotonic clock the RunJob went out moments before what the worker reports next.
   */
  async function clockSteppedAfterRunJob() {
    const clock = { offsetMs: 0, now: () => Date.now() + clock.offsetMs };
    const { platform, provider } = await start({ clock, heartbeatTimeoutMs: 600_000 });
    const job = await platform.client.queue({ name: 'a', command: 'sleep 1' });
    const { first, epoch } = await registerAndTakeJob(provider);
    const { assignedAt } = (await platform.store.getJob(job.id))!;
    clock.offsetMs = 10_000;
    // At least the RunJob's sending (which followed the assignment) moved 10 s on; the performance clock and
    // Date.now() may read one instant 1 ms apart.
    return { platform, clock, job, first, epoch, heldTo: assignedAt! + 10_000 - 1 };
  }

  it("holds a start said to be older than its RunJob to the RunJob's sending (timed on the monotonic clock), not merely to the job's assignment", async () => {
    const { platform, clock, job, first, epoch, heldTo } = await clockSteppedAfterRunJob();
    first.send(logBatch(job.id, epoch, 1, ['a'], true, 60_000)); // a start said to be a minute old
    const running = await runningJob(platform.client, job.id);
    expect(running.startedAt!).toBeGreaterThanOrEqual(heldTo);
    expect(running.startedAt!).toBeLessThanOrEqual(clock.now());
    first.close();
  });

  it("holds a start that travels with the result to the RunJob's sending too (a short job), not merely to the job's assignment", async () => {
    const { platform, job, first, epoch, heldTo } = await clockSteppedAfterRunJob();
    first.send(jobFinished(job.id, epoch, 0, 0, 60_000, { started: true })); // a run said to have lasted a minute
    const ended = await platform.client.wait(job.id);
    expect(ended.state).toBe('SUCCEEDED');
    expect(ended.startedAt!).toBeGreaterThanOrEqual(heldTo);
    expect(ended.startedAt!).toBeLessThanOrEqual(ended.completedAt!);
    first.close();
  });

  it("holds a start reported as earlier than the job's assignment to its assignment (the engine's clock, not the worker's)", async () => {
    // A stopped clock: the job is created and assigned at T; a start said to be 100 ms old would fall before it.
    const T = 1_800_000_000_000;
    const { platform, provider } = await start({ clock: { now: () => T } });
    const job = await platform.client.queue({ name: 'a', command: 'sleep 1' });
    const { first, epoch } = await registerAndTakeJob(provider);
    await new Promise((resolve) => setTimeout(resolve, 120));
    first.send(logBatch(job.id, epoch, 1, ['a'], true, 100));
    const running = await runningJob(platform.client, job.id);
    expect(running.startedAt).toBe(T);
    first.close();
  });

  it('acknowledges a result whose ack waits for a next job before it ends the worker stream', async () => {
    const { platform, provider } = await start();
    const job = await platform.client.queue({ name: 'only', command: 'true' });
    const { first } = await registerAndTakeJob(provider, true);
    first.send(jobFinished(job.id, 1, 0, 0, 1, { started: true }));
    // Stored, so acknowledged: the ack waits (up to 50 ms) for a next job; the server shuts down meanwhile.
    while ((await platform.client.get(job.id)).state !== 'SUCCEEDED') await new Promise((resolve) => setTimeout(resolve, 1));
    const closing = platform.close();
    // Without it the worker would resend the result to the next server, which would refuse it as stale.
    expect(await first.ack((ack) => ack.jobId === job.id)).toEqual({ jobId: job.id, epoch: 1, logSeq: 0, finished: true });
    await closing;
    first.close();
  });

  it('client.run: runs over one stream, each answered once its job is terminal; an abort stops only its own wait', async () => {
    const { platform, provider } = await start();
    const first = platform.client.run({ name: 'first', command: 'exit 3' });
    const { first: worker, epoch } = await registerAndTakeJob(provider);
    const abort = new AbortController();
    const second = platform.client.run({ name: 'second', command: 'true' }, { signal: abort.signal });
    const third = platform.client.run({ name: 'third', command: 'true' });
    let jobs: Job[] = [];
    while (jobs.length < 3) jobs = await platform.client.list();
    const byName = (name: string) => jobs.find((job) => job.spec.name === name)!;
    abort.abort();
    await expect(second).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    worker.send(jobFinished(byName('first').id, epoch, 3, 0, 1, { started: true }));
    expect(await first).toMatchObject({ id: byName('first').id, state: 'FAILED', exitCode: 3, spec: { name: 'first', command: 'exit 3' } });
    await platform.client.cancel(byName('third').id);
    expect(await third).toMatchObject({ id: byName('third').id, state: 'CANCELLED' });
    await expect(platform.client.run({ name: 'bad', command: 'true', timeoutMs: -1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    worker.close();
  });

  it('leaves nothing registered with the notifier once runs, waits, watches and log reads of ended jobs are over', async () => {
    const { platform, provider } = await start();
    const runs = Array.from({ length: 5 }, (_, index) => platform.client.run({ name: `run-${index}`, command: 'true' }));
    const { first, epoch } = await registerAndTakeJob(provider);
    let jobs: Job[] = [];
    while (jobs.length < 5) jobs = await platform.client.list();
    // The worker of capacity 1 runs the jobs one after the other.
    for (let index = 0; index < 5; index += 1) {
      const running = index === 0 ? { id: jobs.find((job) => job.state === 'ASSIGNED')!.id, epoch } : await nextRun(first);
      first.send(jobFinished(running.id, running.epoch, 0, 0, 1, { started: true }));
    }
    await Promise.all(runs);
    for (const job of jobs) {
      expect((await platform.client.wait(job.id)).state).toBe('SUCCEEDED');
      for await (const update of platform.client.watch(job.id)) expect(update.state).toBe('SUCCEEDED');
      for await (const line of platform.client.logs(job.id)) expect(line).toBeDefined();
    }
    await new Promise((resolve) => setImmediate(resolve));
    expect(platform.controller.notifier.waitedKeys).toBe(0);
    first.close();
  });

  it("names the job in a Run's error when waiting for its end failed after it was queued", async () => {
    class UnreadableStore extends MemoryStore {
      override async getJob(id: string): Promise<Job | undefined> {
        const job = await super.getJob(id);
        if (job?.spec.name === 'unreadable') throw new HodeiError('INTERNAL', 'memory store: getJob failed');
        return job;
      }
    }
    const store = new UnreadableStore();
    const { platform } = await start({ store });
    const running = platform.client.run({ name: 'unreadable', command: 'true' }).catch((caught: unknown) => caught);
    const [queued] = await until(async () => {
      const jobs = await platform.client.list();
      return jobs.length > 0 ? jobs : undefined;
    });
    expect(queued?.spec.name).toBe('unreadable');
    // Another server ends the job: the store's announcement does not carry the job, which the wait must read.
    await store.updateJob(queued!.id, {}, { state: 'CANCELLED', completedAt: Date.now() });
    const error = await running;
    expect(error).toMatchObject({ code: 'INTERNAL', message: `job ${queued!.id} was queued, but waiting for its end failed: memory store: getJob failed` });
  });

  it('answers a Run request the server cannot queue with its error, by tag', async () => {
    const { platform } = await start();
    const client = new JobServiceClient(platform.address, credentials.createInsecure());
    const stream = client.run();
    stream.on('error', () => undefined);
    try {
      const reply = new Promise<RunReply>((resolve) => stream.once('data', resolve));
      stream.write({ tag: 7, spec: specToWire({ name: 'no command' }) });
      expect(await reply).toMatchObject({ tag: 7, job: undefined, error: { code: 'INVALID_ARGUMENT' } });
    } finally {
      stream.end();
      client.close();
    }
  });

  it('client.run against a server that predates Run queues and waits instead', async () => {
    const { platform } = await start();
    const { run: _run, ...older } = createJobService(platform.controller);
    const server = new Server();
    server.addService(JobServiceService, older as unknown as JobServiceServer);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
    );
    const client = createClient({ address: `127.0.0.1:${port}` });
    try {
      const running = client.run({ name: 'j', command: 'true' });
      let queued: Job[] = [];
      while (queued.length === 0) queued = await platform.client.list();
      await platform.client.cancel(queued[0]!.id);
      expect(await running).toMatchObject({ id: queued[0]!.id, state: 'CANCELLED' });
    } finally {
      client.close();
      server.forceShutdown();
    }
  });

  describe('prefetch', () => {
    /** A job ASSIGNED or RUNNING: held by its worker. */
    const activeJobs = async (platform: Platform) =>
      (await platform.store.listJobs({ states: ['ASSIGNED', 'RUNNING'] })).map((job) => job.id);

    /** A server with prefetch 3 and one worker at most, four jobs queued, and the worker asked for connected. */
    async function fourJobsAndAWorker() {
      const { platform, provider } = await start({ prefetch: 3, maxWorkers: 1 });
      const ids: string[] = [];
      for (let index = 0; index < 4; index += 1) ids.push((await platform.client.queue({ name: `j${index}`, command: 'true' })).id);
      const request = await provider.nextRequest();
      return { platform, ids, request, worker: connect(request.serverAddress) };
    }

    it('grants an older worker (no holds_prefetched_jobs) no prefetch: it never holds more jobs than its capacity', async () => {
      const { platform, ids, request, worker } = await fourJobsAndAWorker();
      worker.send(register(request.workerId, { otp: request.otp }));
      const registered = (await worker.next()).payload;
      expect(registered).toMatchObject({ $case: 'registered', value: { prefetch: 0 } });
      for (const id of ids) {
        const run = await nextRun(worker);
        expect(run.id).toBe(id);
        // Sent only once the job before it ended: the claim that sent it took one job, for the one free slot.
        expect(await activeJobs(platform)).toEqual([id]);
        expect(await platform.store.getWorker(request.workerId)).toMatchObject({ capacity: 1, runningJobIds: [id] });
        worker.send(jobFinished(id, run.epoch, 0, 0, 1, { started: true }));
      }
      for (const id of ids) expect(await platform.client.wait(id)).toMatchObject({ state: 'SUCCEEDED', attempt: 1 });
      worker.close();
    });

    it('sends a worker that holds jobs its capacity + prefetch at once in queue order; one it gives back is re-queued uncounted', async () => {
      const { platform, ids, request, worker } = await fourJobsAndAWorker();
      worker.send(register(request.workerId, { otp: request.otp }, true, true));
      expect((await worker.next()).payload).toMatchObject({ $case: 'registered', value: { prefetch: 3 } });
      const runs = [];
      for (let index = 0; index < 4; index += 1) runs.push(await nextRun(worker));
      expect(runs.map((run) => run.id)).toEqual(ids);
      expect(await platform.store.getWorker(request.workerId)).toMatchObject({ capacity: 4, state: 'BUSY', runningJobIds: ids });
      expect((await activeJobs(platform)).sort()).toEqual([...ids].sort());

      // The worker drains: it gives back the last job, which it never started.
      const last = runs[3]!;
      worker.send({
        $case: 'jobFinished',
        value: { jobId: last.id, epoch: last.epoch, outcome: JobOutcome.JOB_OUTCOME_RETURNED, exitCode: -1, signal: '', durationMs: 0, errorMessage: 'draining', lastLogSeq: 0, started: false, lines: undefined },
      });
      expect(await worker.ack((ack) => ack.jobId === last.id && ack.finished)).toMatchObject({ epoch: last.epoch });
      expect(await platform.store.getJob(last.id)).toMatchObject({ state: 'QUEUED', attempt: 1 });
      expect(await platform.store.getWorker(request.workerId)).toMatchObject({ state: 'DRAINING', runningJobIds: ids.slice(0, 3) });
      for (const run of runs.slice(0, 3)) worker.send(jobFinished(run.id, run.epoch, 0, 0, 1, { started: true }));
      for (const id of ids.slice(0, 3)) expect(await platform.client.wait(id)).toMatchObject({ state: 'SUCCEEDED', attempt: 1 });
      expect(await platform.store.getJob(last.id)).toMatchObject({ state: 'QUEUED', attempt: 1 });
      expect((await platform.store.listAudit(last.id)).map((event) => event.eventType)).not.toContain('job.started');
      worker.close();
    });
  });
});
