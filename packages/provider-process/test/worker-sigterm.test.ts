import { createPlatform, type Platform } from '@hodei/core';
import { afterEach, describe, expect, it } from 'vitest';
import { ProcessProvider } from '../src';
import { eventually } from './helpers';

let platform: Platform | undefined;
afterEach(async () => {
  await platform?.close();
  platform = undefined;
});

/** A platform whose one process worker of `capacity` slots runs a job, then is sent SIGTERM (it drains). */
async function workerDrainingWhileItRuns(capacity: number, command: string) {
  const provider = new ProcessProvider({ maxWorkers: 1, workerCapacity: capacity, stopGraceMs: 2_000 });
  platform = await createPlatform({ providers: [provider] });
  const running = await platform.client.queue({ name: 'running', command });
  await eventually(async () => (await platform!.client.get(running.id)).state === 'RUNNING', 10_000);
  process.kill(provider.pids[0]!, 'SIGTERM');
  return { platform, running };
}

describe('a worker sent SIGTERM while it runs a job (it finishes that job, then exits 0)', () => {
  it('gives back a job sent to it meanwhile (a free slot): the job runs on another worker, its attempt not counted', async () => {
    const { platform, running } = await workerDrainingWhileItRuns(2, 'sleep 2');
    await new Promise((resolve) => setTimeout(resolve, 300)); // the worker drains by now
    const next = await platform.client.queue({ name: 'next', command: 'echo hi' });
    expect(await platform.client.wait(next.id)).toMatchObject({ state: 'SUCCEEDED', attempt: 1 });
    expect(await platform.client.wait(running.id)).toMatchObject({ state: 'SUCCEEDED' });
  }, 30_000);

  it('gives back the job sent with the ack of its last result (no free slot before): not dropped as the worker exits', async () => {
    const { platform, running } = await workerDrainingWhileItRuns(1, 'sleep 1.5');
    const next = await platform.client.queue({ name: 'next', command: 'echo hi' });
    expect(await platform.client.wait(next.id)).toMatchObject({ state: 'SUCCEEDED', attempt: 1 });
    expect(await platform.client.wait(running.id)).toMatchObject({ state: 'SUCCEEDED' });
  }, 60_000);
});
