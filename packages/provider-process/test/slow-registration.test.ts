// A worker reconnecting while the server's store stalls: its Register is answered late.
import { createConnection, createServer, type Socket } from 'node:net';
import { createPlatform, MemoryStore, type Platform, type Provider, type Store, type WorkerExit } from '@hodei/core';
import { startWorker, type WorkerHandle } from '@hodei/worker';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually } from './helpers';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A TCP proxy to `target`; `cut()` destroys the open connections (the worker's stream breaks). */
async function proxy(target: string) {
  const [host, port] = target.split(':');
  const sockets: Socket[] = [];
  const server = createServer((client) => {
    const upstream = createConnection(Number(port), host);
    sockets.push(client, upstream);
    client.pipe(upstream).pipe(client);
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => server.close());
  return {
    address: `127.0.0.1:${(server.address() as { port: number }).port}`,
    cut: () => sockets.splice(0).forEach((socket) => socket.destroy()),
  };
}

/** A MemoryStore whose getWorker calls stall while `stall(ms)` lasts, then are answered in the order they came. */
function stallingStore() {
  const store = new MemoryStore();
  let until = 0;
  let queue = Promise.resolve();
  const wrapped = new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (property !== 'getWorker' || typeof value !== 'function') return typeof value === 'function' ? value.bind(target) : value;
      return async (...args: unknown[]) => {
        if (Date.now() < until) {
          const turn = queue.then(() => new Promise((resolve) => setTimeout(resolve, Math.max(0, until - Date.now()) + 100)));
          queue = turn.then(() => undefined);
          await turn;
        }
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  }) as Store;
  return { store: wrapped, stall: (ms: number) => (until = Date.now() + ms) };
}

describe('a reconnection whose Register the server answers late (its store stalled)', () => {
  it('is waited for on a connection that is up: the worker keeps its running job (cancelling it would race the new session token)', async () => {
    let worker: WorkerHandle | undefined;
    let link: Awaited<ReturnType<typeof proxy>> | undefined;
    const exits = new Set<(exit: WorkerExit) => void>();
    const logs: string[] = [];
    const provider: Provider = {
      specificationVersion: 'v1',
      name: 'inproc',
      capabilities: { maxWorkers: 1, workerCapacity: 1, labels: {} },
      async createWorker(request) {
        link = await proxy(request.serverAddress);
        worker = startWorker(
          { serverAddress: link.address, otpToken: request.otp, workerId: request.workerId, capacity: 1, labels: {} },
          // A short reconnect timeout: the Register outlasts it, on a connection that is up.
          { log: (line: string) => logs.push(line), reconnectTimeoutMs: 2_000 },
        );
        void worker.done.then((code) => exits.forEach((listener) => listener({ workerId: request.workerId, exitCode: code, signal: null, reason: `exit ${code}` })));
      },
      async destroyWorker() {
        await worker?.stop({ cancelJobs: true });
      },
      onWorkerExit(listener) {
        exits.add(listener);
        return () => exits.delete(listener);
      },
      async close() {
        await worker?.stop({ cancelJobs: true });
      },
    };
    const { store, stall } = stallingStore();
    const platform: Platform = await createPlatform({ store, providers: [provider], host: '127.0.0.1', port: 0, heartbeatTimeoutMs: 120_000 });
    cleanups.push(() => platform.close());
    const job = await platform.client.queue({ name: 'long', command: 'sleep 120' });
    await eventually(async () => (await platform.client.get(job.id)).state === 'RUNNING', 15_000);

    stall(4_000);
    link!.cut();
    const outcome = await Promise.race([worker!.done.then((code) => `worker exited ${code}`), new Promise<string>((resolve) => setTimeout(() => resolve('worker alive'), 8_000))]);
    expect(outcome, logs.join('\n')).toBe('worker alive');
    expect((await platform.client.get(job.id)).state).toBe('RUNNING');
  }, 30_000);
});
