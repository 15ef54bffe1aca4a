import { Server, ServerCredentials, status, type ServerDuplexStream } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient, createPlatform, MemoryStore, type HodeiClient, type Platform } from '../src';
import { JobServiceService, type Job as WireJob, type JobServiceServer, type RunReply, type RunRequest } from '../src/protocol';
import { specToWire } from '../src/server/wire-mapping';
import { idleProvider } from './idle-provider';
import { JobReadCountingStore, until } from './in-process-worker';

type RunCall = ServerDuplexStream<RunRequest, RunReply>;

/** A real gRPC server whose Run streams the test drives by hand (the other methods are not served). */
async function runServer(onStream: (call: RunCall) => void): Promise<{ address: string; server: Server }> {
  const server = new Server();
  server.addService(JobServiceService, { run: onStream } as unknown as JobServiceServer);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  return { address: `127.0.0.1:${port}`, server };
}

/** A terminal job as the server would answer it. */
function succeeded(id: string, name: string): WireJob {
  return {
    id,
    spec: specToWire({ name, command: 'true', maxAttempts: 1 }),
    state: 'SUCCEEDED',
    attempt: 1,
    epoch: 1,
    workerId: 'w-1',
    createdAtMs: 1,
    startedAtMs: 2,
    completedAtMs: 3,
    exitCode: 0,
    signal: '',
    errorMessage: '',
    failureReason: '',
    durationMs: 1,
  };
}

describe('client.run over the Run stream', () => {
  let server: Server | undefined;
  let client: HodeiClient | undefined;
  afterEach(() => {
    client?.close();
    server?.forceShutdown();
  });

  it('answers concurrent runs by tag on one stream, and ends the stream once none waits', async () => {
    const streams: { call: RunCall; requests: RunRequest[]; ended: boolean }[] = [];
    const started = await runServer((call) => {
      const stream = { call, requests: [] as RunRequest[], ended: false };
      streams.push(stream);
      call.on('data', (request: RunRequest) => stream.requests.push(request));
      call.on('end', () => {
        stream.ended = true;
        call.end();
      });
    });
    server = started.server;
    client = createClient({ address: started.address });
    const first = client.run({ name: 'first', command: 'true' });
    const second = client.run({ name: 'second', command: 'true' });
    await until(() => streams[0]?.requests.length === 2 || undefined);
    expect(streams).toHaveLength(1);
    const [a, b] = streams[0]!.requests;
    expect([a!.spec?.name, b!.spec?.name]).toEqual(['first', 'second']);
    // Answered in the order the jobs end, not the order they were queued.
    streams[0]!.call.write({ tag: b!.tag, job: succeeded('job-2', 'second'), error: undefined, jobId: '' });
    expect(await second).toMatchObject({ id: 'job-2', state: 'SUCCEEDED' });
    expect(streams[0]!.ended).toBe(false);
    streams[0]!.call.write({ tag: a!.tag, job: succeeded('job-1', 'first'), error: undefined, jobId: '' });
    expect(await first).toMatchObject({ id: 'job-1', state: 'SUCCEEDED' });
    await until(() => streams[0]!.ended || undefined);
    // A later run opens a new stream.
    const third = client.run({ name: 'third', command: 'true' });
    await until(() => streams[1]?.requests.length === 1 || undefined);
    streams[1]!.call.write({ tag: streams[1]!.requests[0]!.tag, job: undefined, error: { code: 'DRAINING', message: 'draining', field: '' }, jobId: '' });
    await expect(third).rejects.toMatchObject({ code: 'DRAINING', message: 'draining' });
  });

  it('rejects every waiting run when the stream breaks, and the next run opens a new stream', async () => {
    const calls: RunCall[] = [];
    const started = await runServer((call) => {
      calls.push(call);
      call.on('data', (request: RunRequest) => {
        if (calls.length === 2) call.write({ tag: request.tag, job: succeeded('job-3', request.spec!.name), error: undefined, jobId: '' });
      });
      call.on('end', () => call.end());
    });
    server = started.server;
    client = createClient({ address: started.address });
    const runs = [client.run({ name: 'a', command: 'true' }), client.run({ name: 'b', command: 'true' })];
    await until(() => calls.length === 1 || undefined);
    calls[0]!.emit('error', { code: status.UNAVAILABLE, details: 'gone' });
    for (const run of runs) await expect(run).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(await client.run({ name: 'c', command: 'true' })).toMatchObject({ id: 'job-3', state: 'SUCCEEDED' });
    expect(calls).toHaveLength(2);
  });

  it("names the job in the error of a run whose wait failed after it was queued", async () => {
    const started = await runServer((call) => {
      call.on('data', (request: RunRequest) =>
        call.write({ tag: request.tag, job: undefined, error: { code: 'UNAVAILABLE', message: 'store down', field: '' }, jobId: 'job-9' }),
      );
      call.on('end', () => call.end());
    });
    server = started.server;
    client = createClient({ address: started.address });
    await expect(client.run({ name: 'a', command: 'true' })).rejects.toMatchObject({
      code: 'UNAVAILABLE',
      message: 'job job-9 was queued, but waiting for its end failed: store down',
    });
  });

  it('rejects a waiting run with UNAVAILABLE when the client is closed', async () => {
    const calls: RunCall[] = [];
    const started = await runServer((call) => {
      calls.push(call);
      call.on('error', () => undefined);
    });
    server = started.server;
    client = createClient({ address: started.address });
    const run = client.run({ name: 'a', command: 'true' });
    await until(() => calls.length === 1 || undefined);
    client.close();
    await expect(run).rejects.toMatchObject({ code: 'UNAVAILABLE', message: expect.stringContaining('may have been queued') });
  });
});

describe('client.run against the engine', () => {
  let platform: Platform | undefined;
  afterEach(async () => {
    await platform?.close();
  });

  it('reads nothing of the job it queued while it waits: the server waits on it from before it is stored, and gets its end from the engine', async () => {
    const store = new JobReadCountingStore();
    platform = await createPlatform({ store, providers: [idleProvider] });
    const run = platform.client.run({ name: 'waits', command: 'true' });
    const [queued] = await until(async () => {
      const jobs = await store.listJobs();
      return jobs.length > 0 ? jobs : undefined;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(store.jobReads).toBe(0);
    // Ended elsewhere (a cancel, here through the controller): the run answers with the end it was handed.
    await platform.controller.cancel(queued!.id);
    expect(await run).toMatchObject({ id: queued!.id, state: 'CANCELLED' });
  });

  it('answers a run whose job ended before its queue call returned (another server took and ended it first)', async () => {
    // This also held before the server waited from before the insert (its first read after `queue` saw the end).
    // It guards that wait now that the run reads nothing: armed only after `queue` returned, it would miss the end
    // and the run would hang.
    class SlowInsertStore extends MemoryStore {
      override async insertJob(...args: Parameters<MemoryStore['insertJob']>): Promise<void> {
        await super.insertJob(...args);
        // The store announces the job's end (another server's write) before the insert's reply comes back.
        await super.updateJob(args[0].id, {}, { state: 'CANCELLED', completedAt: Date.now(), errorMessage: 'ended elsewhere' });
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
    platform = await createPlatform({ store: new SlowInsertStore(), providers: [idleProvider] });
    expect(await platform.client.run({ name: 'quick', command: 'true' }, { signal: AbortSignal.timeout(3_000) })).toMatchObject({ state: 'CANCELLED', errorMessage: 'ended elsewhere' });
  });
});
