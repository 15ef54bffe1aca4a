import { credentials, type ClientDuplexStream } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { createPlatform, type CreateWorkerRequest, type Platform, type Provider, type WorkerExit } from '../src';
import {
  JobOutcome,
  LogStream,
  WorkerServiceClient,
  type ServerMessage,
  type WorkerMessage,
} from '../src/protocol';

/** A provider that starts nothing: it hands the test the credentials a real worker would get. */
class HandOverProvider implements Provider {
  readonly specificationVersion = 'v1' as const;
  readonly name = 'hand-over';
  readonly capabilities = { maxWorkers: 2, workerCapacity: 1, labels: {} };
  readonly requests: CreateWorkerRequest[] = [];
  readonly destroyed: string[] = [];
  private waiters: ((request: CreateWorkerRequest) => void)[] = [];
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

/** The Register message a worker sends first, with its one-time token or its session token. */
function register(workerId: string, credentials: { otp?: string; sessionToken?: string }): WorkerMessage['payload'] {
  return {
    $case: 'register',
    value: { workerId, otp: credentials.otp ?? '', sessionToken: credentials.sessionToken ?? '', capacity: 1, labels: {}, version: 'test' },
  };
}

/** A worker speaking the protocol by hand. */
function connect(address: string) {
  const client = new WorkerServiceClient(address, credentials.createInsecure());
  const stream: ClientDuplexStream<WorkerMessage, ServerMessage> = client.connect();
  const inbox: ServerMessage[] = [];
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
    close: () => {
      stream.end();
      client.close();
    },
  };
}

describe('worker protocol over real gRPC', () => {
  let platform: Platform | undefined;
  afterEach(async () => platform?.close());

  async function start(options: { heartbeatTimeoutMs?: number } = {}) {
    const provider = new HandOverProvider();
    platform = await createPlatform({ providers: [provider], ...options });
    return { platform, provider };
  }

  /** The first worker the provider is asked for registers with its OTP and receives the queued job. */
  async function registerAndTakeJob(provider: HandOverProvider) {
    const request = await provider.nextRequest();
    const first = connect(request.serverAddress);
    first.send(register(request.workerId, { otp: request.otp }));
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
    worker.send({ $case: 'jobStarted', value: { jobId: job.id, epoch: 1, pid: 42 } });
    worker.send({
      $case: 'logBatch',
      value: { jobId: job.id, epoch: 1, entries: [{ seq: 1, timestampMs: 5, stream: LogStream.LOG_STREAM_STDOUT, text: 'hi' }] },
    });
    worker.send({
      $case: 'jobFinished',
      value: { jobId: job.id, epoch: 1, outcome: JobOutcome.JOB_OUTCOME_EXITED, exitCode: 0, signal: '', durationMs: 3, errorMessage: '' },
    });
    expect(await platform.client.wait(job.id)).toMatchObject({ state: 'SUCCEEDED', exitCode: 0, durationMs: 3 });
    const lines = [];
    for await (const line of platform.client.logs(job.id)) lines.push(line);
    expect(lines).toEqual([{ seq: 1, timestamp: 5, stream: 'stdout', text: 'hi' }]);
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
    worker.send({ $case: 'logBatch', value: { jobId: job.id, epoch: 0, entries: [{ seq: 1, timestampMs: 1, stream: 1, text: 'stale' }] } });
    worker.send({ $case: 'jobFinished', value: { jobId: job.id, epoch: 0, outcome: 1, exitCode: 0, signal: '', durationMs: 1, errorMessage: '' } });
    worker.send({ $case: 'logBatch', value: { jobId: job.id, epoch: 1, entries: [{ seq: 1, timestampMs: 1, stream: 1, text: 'fresh' }] } });
    worker.send({ $case: 'jobFinished', value: { jobId: job.id, epoch: 1, outcome: 1, exitCode: 3, signal: '', durationMs: 1, errorMessage: '' } });
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
    first.send({ $case: 'jobStarted', value: { jobId: job.id, epoch, pid: 1 } });
    first.send({ $case: 'logBatch', value: { jobId: job.id, epoch, entries: [{ seq: 1, timestampMs: 1, stream: LogStream.LOG_STREAM_STDOUT, text: 'before' }] } });
    await new Promise((resolve) => setTimeout(resolve, 100));
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
    // It resends what may have been in flight: lines already stored (by their line number) are skipped.
    second.send({
      $case: 'logBatch',
      value: {
        jobId: job.id,
        epoch,
        entries: [
          { seq: 1, timestampMs: 1, stream: LogStream.LOG_STREAM_STDOUT, text: 'before' },
          { seq: 2, timestampMs: 2, stream: LogStream.LOG_STREAM_STDOUT, text: 'after' },
        ],
      },
    });
    second.send({ $case: 'jobFinished', value: { jobId: job.id, epoch, outcome: JobOutcome.JOB_OUTCOME_EXITED, exitCode: 0, signal: '', durationMs: 5, errorMessage: '' } });
    expect(await platform.client.wait(job.id)).toMatchObject({ state: 'SUCCEEDED', attempt: 1 });
    const texts = [];
    for await (const line of platform.client.logs(job.id)) texts.push(line.text);
    expect(texts).toEqual(['before', 'after']);
    second.close();
  });

  it('tells a reconnected worker to drop a job that moved on while it was away', async () => {
    const { platform, provider } = await start({ heartbeatTimeoutMs: 5_000 });
    const job = await platform.client.queue({ name: 'j', command: 'long' });
    const { request, first, sessionToken, epoch } = await registerAndTakeJob(provider);
    first.close();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await platform.client.cancel(job.id)).state).toBe('CANCELLED');

    const second = connect(request.serverAddress);
    second.send(register(request.workerId, { sessionToken }));
    expect((await second.next()).payload?.$case).toBe('registered');
    second.send({ $case: 'logBatch', value: { jobId: job.id, epoch, entries: [{ seq: 1, timestampMs: 1, stream: LogStream.LOG_STREAM_STDOUT, text: 'late' }] } });
    const answer = await second.next();
    expect(answer.payload).toMatchObject({ $case: 'cancelJob', value: { jobId: job.id } });
    const texts = [];
    for await (const line of platform.client.logs(job.id)) texts.push(line.text);
    expect(texts).not.toContain('late');
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
});
