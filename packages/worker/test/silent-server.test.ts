import { createConnection, createServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startWorker } from '../src/agent';
import { FakeServer } from './fake-server';
import { isAlive, spec, waitFor } from './helpers';

const cleanups: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A TCP proxy to `target` that can turn into a black hole: connections stay open, every byte is read and dropped. */
async function blackHoleProxy(target: string) {
  const [host, port] = target.split(':');
  const sockets: Socket[] = [];
  let dropping = false;
  const server = createServer((client) => {
    const upstream = createConnection(Number(port), host);
    sockets.push(client, upstream);
    client.on('data', (data) => !dropping && upstream.write(data));
    upstream.on('data', (data) => !dropping && client.write(data));
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return { address: `127.0.0.1:${(server.address() as { port: number }).port}`, drop: () => (dropping = true) };
}

describe('a server that goes silent without closing the connection (its host gone, a partition, a hung proxy)', () => {
  it('is noticed (HTTP/2 keepalive), the reconnection through the silence is bounded, and the worker gives up in time', async () => {
    const server = await new FakeServer().start();
    cleanups.push(() => server.crash());
    const proxy = await blackHoleProxy(server.address);
    const first = server.nextConnection();
    const worker = startWorker(
      { serverAddress: proxy.address, otpToken: 'otp', workerId: 'w-silent', capacity: 1, labels: {} },
      {
        reconnectTimeoutMs: 2_000,
        log: () => undefined,
        // The keepalive the worker uses, scaled down (10 s / 5 s by default).
        channelOptions: { 'grpc.keepalive_time_ms': 1_000, 'grpc.keepalive_timeout_ms': 1_000 },
      },
    );
    const connection = await first;
    connection.send({ $case: 'runJob', value: { jobId: 'j1', epoch: 1, attempt: 1, spec: spec({ command: 'echo $$; sleep 30' }), firstLogSeq: 1, acks: [] } });
    await connection.until(() => connection.logs('j1').some((entry) => /^\d+$/.test(entry.text)), 10_000, 'the job pid');
    const jobPid = Number(connection.logs('j1').find((entry) => /^\d+$/.test(entry.text))!.text);
    cleanups.push(() => {
      if (isAlive(jobPid)) process.kill(-jobPid, 'SIGKILL');
    });
    proxy.drop();
    // Without keepalive the stream never fails; without a bound on the Register, the reconnection hangs.
    const exit = await Promise.race([worker.done, new Promise<string>((resolve) => setTimeout(() => resolve('still running'), 15_000))]);
    expect(exit).toBe(1);
    await waitFor(() => !isAlive(jobPid), 5_000, 'the job process killed');
  }, 30_000);
});
