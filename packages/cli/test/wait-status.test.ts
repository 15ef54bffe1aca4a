import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPlatform, type Platform, type Provider } from '@hodei/core';
import { ProcessProvider } from '@hodei/provider-process';
import { describeWait, showWaitStatus } from '../src/wait-status';

/** A provider whose workers never start: jobs stay QUEUED with a worker being provisioned. */
const stuckProvider: Provider = {
  specificationVersion: 'v1',
  name: 'slowcloud',
  capabilities: { maxWorkers: 1, workerCapacity: 1, labels: {} },
  createWorker: () => new Promise(() => undefined),
  destroyWorker: async () => undefined,
  onWorkerExit: () => () => undefined,
  close: async () => undefined,
};

function terminal() {
  let text = '';
  return { io: { stdout: { write: () => true }, stderr: { write: (chunk: string) => (text += chunk) }, env: {}, stderrIsTerminal: true, onSignal: () => () => undefined }, text: () => text };
}

describe('job run wait status', () => {
  let platform: Platform;
  beforeAll(async () => {
    platform = await createPlatform({ providers: [stuckProvider] });
  });
  afterAll(() => platform.close());

  it('says which provider is provisioning while the job waits, and erases itself', async () => {
    const job = await platform.client.queue({ name: 'waits', command: 'true' });
    const screen = terminal();
    const clear = showWaitStatus(platform.client, job.id, screen.io);
    const deadline = Date.now() + 5_000;
    while (!screen.text().includes('provisioning') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(screen.text()).toContain('hodei: provisioning worker via slowcloud...');
    clear();
    expect(screen.text().endsWith('\r\x1b[2K')).toBe(true);
  });

  it('draws nothing when stderr is not a terminal', async () => {
    const job = await platform.client.queue({ name: 'quiet', command: 'true' });
    const screen = terminal();
    const clear = showWaitStatus(platform.client, job.id, { ...screen.io, stderrIsTerminal: false });
    await new Promise((resolve) => setTimeout(resolve, 200));
    clear();
    expect(screen.text()).toBe('');
  });

  it('describes a running job by its worker', async () => {
    const real = await createPlatform({ providers: [new ProcessProvider({ maxWorkers: 1 })] });
    try {
      const job = await real.client.queue({ name: 'runs', command: 'sleep 2' });
      let running = await real.client.get(job.id);
      while (running.state !== 'RUNNING') running = await real.client.get(job.id);
      expect(await describeWait(real.client, running)).toBe(`running on worker ${running.workerId}...`);
      await real.client.cancel(job.id);
    } finally {
      await real.close();
    }
  });
});
