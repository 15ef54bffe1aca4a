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

  async function start() {
    const provider = new HandOverProvider();
    platform = await createPlatform({ providers: [provider] });
    return { platform, provider };
  }

  it('registers with the OTP, runs a job, stores its logs and result', async () => {
    const { platform, provider } = await start();
    const job = await platform.client.queue({ name: 'j', command: 'echo hi' });
    const request = await provider.nextRequest();
    expect(request.serverAddress).toBe(platform.address);
    const worker = connect(request.serverAddress);
    worker.send({ $case: 'register', value: { workerId: request.workerId, otp: request.otp, sessionToken: '', capacity: 1, labels: {}, version: 't' } });
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
    impostor.send({ $case: 'register', value: { workerId: 'w-other', otp: request.otp, sessionToken: '', capacity: 1, labels: {}, version: '' } });
    expect((await impostor.next()).payload).toMatchObject({ $case: 'refused', value: { code: 'UNAUTHENTICATED' } });
    const genuine = connect(request.serverAddress);
    genuine.send({ $case: 'register', value: { workerId: request.workerId, otp: request.otp, sessionToken: '', capacity: 1, labels: {}, version: '' } });
    expect((await genuine.next()).payload).toMatchObject({ $case: 'registered' });
    const replay = connect(request.serverAddress);
    replay.send({ $case: 'register', value: { workerId: request.workerId, otp: request.otp, sessionToken: '', capacity: 1, labels: {}, version: '' } });
    expect((await replay.next()).payload).toMatchObject({ $case: 'refused' });
    expect((await platform.store.listAudit('w-other')).map((event) => event.eventType)).toContain('worker.refused');
    for (const worker of [impostor, genuine, replay]) worker.close();
  });

  it('fences a stale epoch: logs and results of an older lease are refused', async () => {
    const { platform, provider } = await start();
    const job = await platform.client.queue({ name: 'j', command: 'true' });
    const request = await provider.nextRequest();
    const worker = connect(request.serverAddress);
    worker.send({ $case: 'register', value: { workerId: request.workerId, otp: request.otp, sessionToken: '', capacity: 1, labels: {}, version: '' } });
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

  it('marks a worker whose stream closes mid-job LOST and fails its job with WORKER_LOST', async () => {
    const { platform, provider } = await start();
    const job = await platform.client.queue({ name: 'j', command: 'sleep 100' });
    const request = await provider.nextRequest();
    const worker = connect(request.serverAddress);
    worker.send({ $case: 'register', value: { workerId: request.workerId, otp: request.otp, sessionToken: '', capacity: 1, labels: {}, version: '' } });
    await worker.next();
    await worker.next();
    worker.close();
    expect(await platform.client.wait(job.id)).toMatchObject({ state: 'FAILED', failureReason: 'WORKER_LOST' });
    expect((await platform.store.getWorker(request.workerId))?.state).toBe('LOST');
    expect(provider.destroyed).toContain(request.workerId);
  });
});
