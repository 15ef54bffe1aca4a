import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createPlatform, type LogLine, type WorkerExit } from '@hodei/core';
import { ProcessProvider } from '../src';
import { collectLogs, eventually, isAlive, waitForLine } from './helpers';

/**
 * A process provider that cannot reach some workers to destroy them, as across a network partition: the
 * server's clean-up of a lost worker misses it, so a frozen worker really does come back.
 */
class PartitionedProvider extends ProcessProvider {
  readonly unreachable = new Set<string>();

  override async destroyWorker(workerId: string): Promise<void> {
    if (this.unreachable.has(workerId)) return;
    return super.destroyWorker(workerId);
  }
}

const dir = mkdtempSync(join(tmpdir(), 'hodei-fencing-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('SIGSTOP fencing end to end', () => {
  it('a worker frozen past the heartbeat timeout loses its job to another worker and, resumed, lands nothing', async () => {
    const provider = new PartitionedProvider({ maxWorkers: 2, stopGraceMs: 2_000 });
    const exits: WorkerExit[] = [];
    provider.onWorkerExit((exit) => exits.push(exit));
    const platform = await createPlatform({
      providers: [provider],
      heartbeatTimeoutMs: 2_500,
      heartbeatIntervalMs: 500,
      retryBackoffMs: 100,
    });
    let frozenPid: number | undefined;
    try {
      // The first attempt claims the marker and prints "stale N" forever; the second finds it claimed.
      const marker = join(dir, 'claimed');
      const command = `if mkdir ${marker} 2>/dev/null; then echo "pid $$"; i=0; while true; do i=$((i+1)); echo "stale $i"; sleep 0.02; done; else echo "second attempt"; fi`;
      const job = await platform.client.queue({ name: 'fenced', command, maxAttempts: 2 });
      const pidLine = await waitForLine(platform.client, job.id, 'stale 3').then(async () => {
        for await (const line of platform.client.logs(job.id)) if (line.text.startsWith('pid ')) return line.text;
        throw new Error('no pid line');
      });
      const jobPid = Number(pidLine.slice(4));
      const first = await platform.client.get(job.id);
      expect(first).toMatchObject({ state: 'RUNNING', attempt: 1 });
      const frozenWorkerId = first.workerId!;
      expect(provider.pids).toHaveLength(1);
      frozenPid = provider.pids[0]!;
      provider.unreachable.add(frozenWorkerId);

      process.kill(frozenPid, 'SIGSTOP');
      // Past the heartbeat timeout: the worker is LOST, the job re-queued (attempt 2) and run by a new worker.
      const done = await platform.client.wait(job.id);
      expect(done).toMatchObject({ state: 'SUCCEEDED', exitCode: 0, attempt: 2 });
      expect(done.workerId).not.toBe(frozenWorkerId);
      expect((await platform.store.getWorker(frozenWorkerId))?.state).toBe('LOST');
      const before = await collectLogs(platform.client, job.id);
      const staleBefore = before.filter((line) => line.text.startsWith('stale '));
      // Its job kept writing into the frozen worker's pipe meanwhile: plenty of output waiting to be sent.
      expect(isAlive(jobPid)).toBe(true);

      process.kill(frozenPid, 'SIGCONT');
      // Resumed, the worker finds its stream closed, is refused on reconnection (exit 3) and kills its job.
      await eventually(() => exits.some((exit) => exit.workerId === frozenWorkerId), 20_000);
      expect(exits.find((exit) => exit.workerId === frozenWorkerId)?.exitCode).toBe(3);
      await eventually(() => !isAlive(jobPid), 10_000);

      const after = await collectLogs(platform.client, job.id);
      expect(after).toEqual(before);
      const secondStart = after.findIndex((line) => line.text === 'second attempt');
      expect(secondStart).toBeGreaterThan(0);
      const lastStale = Math.max(...staleBefore.map((line: LogLine) => line.seq));
      expect(lastStale).toBeLessThan(after[secondStart]!.seq);
      expect(after.slice(secondStart).some((line) => line.text.startsWith('stale '))).toBe(false);
      expect(await platform.client.get(job.id)).toMatchObject({ state: 'SUCCEEDED', attempt: 2, workerId: done.workerId });
    } finally {
      if (frozenPid !== undefined && isAlive(frozenPid)) process.kill(frozenPid, 'SIGKILL');
      provider.unreachable.clear();
      await platform.close();
    }
  }, 60_000);
});
