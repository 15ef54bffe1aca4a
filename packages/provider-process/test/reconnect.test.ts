import { describe, expect, it } from 'vitest';
import {
  HodeiClient,
  JobController,
  MemoryStore,
  resolveEngineConfig,
  silentLogger,
  startGrpcServer,
  systemClock,
} from '@hodei/core';
import { ProcessProvider } from '../src';
import { waitForLine } from './helpers';

describe('worker reconnection', () => {
  it('keeps a running job when the server restarts its gRPC server: the worker reconnects and every line lands', async () => {
    const provider = new ProcessProvider({ maxWorkers: 1 });
    const store = new MemoryStore();
    let address = '';
    const controller = new JobController({
      store,
      providers: [provider],
      clock: systemClock,
      logger: silentLogger,
      config: resolveEngineConfig({ heartbeatTimeoutMs: 15_000 }),
      serverAddress: () => address,
    });
    let server = await startGrpcServer(controller, '127.0.0.1', 0);
    const port = server.port;
    address = `127.0.0.1:${port}`;
    await controller.start();
    const client = new HodeiClient({ address });
    try {
      const job = await client.queue({ name: 'long', command: 'for i in $(seq 1 100); do echo line-$i; sleep 0.05; done' });
      await waitForLine(client, job.id, 'line-3');
      const workerId = (await client.get(job.id)).workerId;

      // Only the gRPC server goes away (its streams are cut after a 2 s grace); the engine and the job live on.
      await server.shutdown();
      server = await startGrpcServer(controller, '127.0.0.1', port);

      const done = await client.wait(job.id);
      expect(done).toMatchObject({ state: 'SUCCEEDED', attempt: 1, exitCode: 0, workerId });
      const texts: string[] = [];
      for await (const line of client.logs(job.id)) if (line.stream === 'stdout') texts.push(line.text);
      expect(texts).toEqual(Array.from({ length: 100 }, (_, index) => `line-${index + 1}`));
      const worker = (await store.listWorkers()).find((candidate) => candidate.id === workerId);
      expect(worker?.state).not.toBe('LOST');
      const events = (await store.listAudit(workerId!)).map((event) => event.eventType);
      expect(events).toContain('worker.disconnected');
      expect(events).toContain('worker.reconnected');
      expect(events).not.toContain('worker.lost');
    } finally {
      await controller.stop();
      client.close();
      await server.shutdown();
      await store.close();
    }
    expect(provider.pids).toEqual([]);
  }, 30_000);
});
