import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPlatform, type Platform } from '@hodei/core';
import { ProcessProvider } from '../src';

describe('retries on listed exit codes, with backoff', () => {
  let platform: Platform;
  let provider: ProcessProvider;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hodei-retries-'));
    provider = new ProcessProvider({ maxWorkers: 2 });
    platform = await createPlatform({ providers: [provider], retryBackoffMs: 50 });
  });
  afterAll(async () => {
    await platform.close();
    expect(provider.pids).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  });

  const runs = (file: string) => readFileSync(file, 'utf8').trim().split('\n');

  it('re-runs a job exiting with a listed code until maxAttempts, then ends FAILED with the last attempt', async () => {
    const file = join(dir, 'always-3');
    const job = await platform.client.queue({
      name: 'exit 3',
      command: `date +%s%N >> ${file}; exit 3`,
      retryOnExitCodes: [3],
      maxAttempts: 3,
    });
    const done = await platform.client.wait(job.id);
    expect(done).toMatchObject({ state: 'FAILED', attempt: 3, exitCode: 3, failureReason: 'EXIT_CODE' });
    const times = runs(file).map((line) => Number(BigInt(line) / 1_000_000n));
    expect(times).toHaveLength(3);
    // Backoff: ~50 ms then ~100 ms (±20 %) between the attempts.
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(40);
    expect(times[2]! - times[1]!).toBeGreaterThanOrEqual(80);
  });

  it('succeeds when a later attempt does, and does not retry codes it was not asked to', async () => {
    const file = join(dir, 'second-ok');
    const job = await platform.client.queue({
      name: 'flaky',
      command: `echo run >> ${file}; [ "$(wc -l < ${file})" -ge 2 ] || exit 75`,
      retryOnExitCodes: [75],
      maxAttempts: 3,
    });
    expect(await platform.client.wait(job.id)).toMatchObject({ state: 'SUCCEEDED', attempt: 2, exitCode: 0 });
    expect(runs(file)).toHaveLength(2);

    const other = join(dir, 'other-code');
    const once = await platform.client.queue({ name: 'other', command: `echo run >> ${other}; exit 4`, retryOnExitCodes: [3], maxAttempts: 3 });
    expect(await platform.client.wait(once.id)).toMatchObject({ state: 'FAILED', attempt: 1, exitCode: 4 });
    expect(runs(other)).toHaveLength(1);
  });
});
