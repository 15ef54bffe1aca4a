import { afterEach, describe, expect, it } from 'vitest';
import { createPlatform, type Platform, type Provider } from '../src';

function failingProvider(failures: number): Provider & { attempts: number } {
  return {
    specificationVersion: 'v1',
    name: 'flaky',
    capabilities: { maxWorkers: 1, workerCapacity: 1, labels: {} },
    attempts: 0,
    async createWorker() {
      this.attempts += 1;
      if (this.attempts <= failures) throw new Error('image not found: hodei-worker:missing');
    },
    destroyWorker: async () => undefined,
    onWorkerExit: () => () => undefined,
    close: async () => undefined,
  };
}

describe('a provider that cannot start workers', () => {
  let platform: Platform | undefined;
  afterEach(async () => platform?.close());

  it('fails the waiting job with PROVISIONING_FAILED and the provider error after three tries, no hang', async () => {
    const provider = failingProvider(Infinity);
    platform = await createPlatform({ providers: [provider] });
    const job = await platform.client.queue({ name: 'j', command: 'true' });
    const done = await platform.client.wait(job.id);
    expect(done).toMatchObject({ state: 'FAILED', failureReason: 'PROVISIONING_FAILED' });
    expect(done.errorMessage).toContain('image not found: hodei-worker:missing');
    expect(provider.attempts).toBe(3);
    const workers = await platform.client.listWorkers();
    expect(workers.map((worker) => worker.state)).toEqual(['TERMINATED', 'TERMINATED', 'TERMINATED']);
  });

  it('retries a transient failure and keeps the job queued', async () => {
    const provider = failingProvider(1);
    platform = await createPlatform({ providers: [provider] });
    const job = await platform.client.queue({ name: 'j', command: 'true' });
    const deadline = Date.now() + 10_000;
    while (provider.attempts < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(provider.attempts).toBe(2);
    expect((await platform.client.get(job.id)).state).toBe('QUEUED');
  });
});
