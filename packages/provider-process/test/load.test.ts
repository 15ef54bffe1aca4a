import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createPlatform, isTerminalJobState } from '@hodei/core';
import { ProcessProvider } from '../src';

const JOBS = 2_000;

describe('load', () => {
  it(`runs ${JOBS} jobs queued at once on 8 workers, each exactly once, and leaks no process`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hodei-load-'));
    const file = join(dir, 'runs');
    const provider = new ProcessProvider({ maxWorkers: 8 });
    const platform = await createPlatform({ providers: [provider] });
    const started = Date.now();
    try {
      const ids = await Promise.all(
        Array.from({ length: JOBS }, async (_, index) => {
          const job = await platform.client.queue({ name: `load-${index}`, command: `echo $HODEI_JOB_ID >> ${file}` });
          return job.id;
        }),
      );
      const done = await Promise.all(ids.map((id) => platform.client.wait(id)));
      const states = new Map<string, number>();
      for (const job of done) states.set(job.state, (states.get(job.state) ?? 0) + 1);
      expect(Object.fromEntries(states)).toEqual({ SUCCEEDED: JOBS });
      expect(done.every((job) => job.attempt === 1)).toBe(true);

      const runs = new Map<string, number>();
      for (const line of readFileSync(file, 'utf8').split('\n')) if (line) runs.set(line, (runs.get(line) ?? 0) + 1);
      expect(runs.size).toBe(JOBS);
      expect([...runs.values()].every((count) => count === 1)).toBe(true);
      expect([...runs.keys()].sort()).toEqual([...ids].sort());

      const all = await platform.client.list({ limit: JOBS * 2 });
      expect(all.filter((job) => !isTerminalJobState(job.state))).toEqual([]);
      expect((await platform.client.listWorkers()).filter((worker) => worker.state !== 'TERMINATED').length).toBeLessThanOrEqual(8);
    } finally {
      await platform.close();
      rmSync(dir, { recursive: true, force: true });
    }
    expect(provider.pids).toEqual([]);
    const { maxRSS } = process.resourceUsage();
    console.log(`load: ${JOBS} jobs on 8 workers in ${Date.now() - started} ms; peak RSS ${(maxRSS / 1024).toFixed(1)} MiB`);
  }, 120_000);
});
