import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createPlatform, HodeiError, MemoryStore } from '@hodei/core';
import { ProcessProvider } from '../src';
import { eventually, isAlive, waitForLine } from './helpers';

const dir = mkdtempSync(join(tmpdir(), 'hodei-drain-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A command that prints `started`, then waits until the test creates `gate`. */
const gated = (gate: string) => `echo started; while [ ! -e ${gate} ]; do sleep 0.05; done; echo finished`;

describe('Platform.stop({ graceMs }): drain', () => {
  it('refuses new jobs with DRAINING, lets the running job finish, and leaves queued jobs QUEUED in the store', async () => {
    const store = new MemoryStore(); // stands for a durable store: the platform does not own (nor close) it
    const provider = new ProcessProvider({ maxWorkers: 1, stopGraceMs: 2_000 });
    const platform = await createPlatform({ providers: [provider], store });
    const gate = join(dir, 'first');
    const running = await platform.client.queue({ name: 'running', command: gated(gate) });
    const queued = await platform.client.queue({ name: 'queued', command: 'echo later' });
    await waitForLine(platform.client, running.id, 'started');

    const stopping = platform.stop({ graceMs: 60_000 });
    await eventually(() => platform.controller.isDraining);
    const refused = await platform.client.queue({ name: 'late', command: 'echo late' }).catch((error: unknown) => error);
    expect(HodeiError.isInstance(refused) && refused.code).toBe('DRAINING');
    expect((refused as HodeiError).message).toMatch(/draining/);

    writeFileSync(gate, '');
    expect(await stopping).toEqual({ drained: true });
    expect(await store.getJob(running.id)).toMatchObject({ state: 'SUCCEEDED', exitCode: 0 });
    expect(await store.getJob(queued.id)).toMatchObject({ state: 'QUEUED', attempt: 1 });
    expect((await store.listJobs()).map((job) => job.spec.name).sort()).toEqual(['queued', 'running']);
    expect(provider.pids).toEqual([]);
    await store.close();
  });

  it('past the grace, stops the job still running: re-queued with attempts left, else FAILED with SHUTDOWN', async () => {
    const store = new MemoryStore();
    const provider = new ProcessProvider({ maxWorkers: 2, stopGraceMs: 2_000 });
    const platform = await createPlatform({ providers: [provider], store });
    const once = await platform.client.queue({ name: 'once', command: 'echo started; sleep 300', maxAttempts: 1 });
    const retried = await platform.client.queue({ name: 'retried', command: 'echo started; sleep 300', maxAttempts: 2 });
    await waitForLine(platform.client, once.id, 'started');
    await waitForLine(platform.client, retried.id, 'started');
    const pids = provider.pids;
    expect(pids).toHaveLength(2);

    expect(await platform.stop({ graceMs: 500 })).toEqual({ drained: false });
    expect(await store.getJob(once.id)).toMatchObject({ state: 'FAILED', failureReason: 'SHUTDOWN' });
    expect(await store.getJob(retried.id)).toMatchObject({ state: 'QUEUED', attempt: 2 });
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
    await store.close();
  });

  it('an aborted signal ends the grace early; stop() again joins the first', async () => {
    const provider = new ProcessProvider({ maxWorkers: 1, stopGraceMs: 2_000 });
    const platform = await createPlatform({ providers: [provider] });
    const job = await platform.client.queue({ name: 'long', command: 'echo started; sleep 300' });
    await waitForLine(platform.client, job.id, 'started');
    const endGrace = new AbortController();
    const first = platform.stop({ graceMs: 600_000, signal: endGrace.signal });
    const second = platform.stop();
    endGrace.abort();
    expect(await first).toEqual({ drained: false });
    expect(await second).toEqual({ drained: false });
    await expect(platform.stop({ graceMs: -1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'graceMs' });
    expect(provider.pids).toEqual([]);
  });
});
