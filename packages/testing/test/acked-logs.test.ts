import { MemoryStore, type NewLogLine, type NewLogLineBatch } from '@hodei/core';
import { expect, onTestFinished, test } from 'vitest';
import { createTestPlatform } from '../src/index';

/** A store whose appendLogs/appendLogBatch fails for its first `failures` non-empty batches (a database outage). */
class FlakyLogStore extends MemoryStore {
  refused = 0;
  constructor(private readonly failures: number) {
    super();
  }
  override async appendLogs(jobId: string, lines: readonly NewLogLine[]): Promise<number> {
    if (lines.length > 0 && this.refused < this.failures) {
      this.refused += 1;
      throw new Error('database unavailable');
    }
    return super.appendLogs(jobId, lines);
  }
  override async appendLogBatch(jobId: string, batch: NewLogLineBatch): Promise<number> {
    if (batch.textLengths.length > 0 && this.refused < this.failures) {
      this.refused += 1;
      throw new Error('database unavailable');
    }
    return super.appendLogBatch(jobId, batch);
  }
}

test('no line is lost or stored twice when the store refuses log batches a few times (a real worker resends)', async () => {
  const store = new FlakyLogStore(3);
  const hodei = await createTestPlatform({ store, onTestFinished });
  const { job, stdout, lines } = await hodei.run('seq 1 20000');
  expect(job.state).toBe('SUCCEEDED');
  expect(store.refused).toBe(3);
  expect(stdout).toHaveLength(20_000);
  expect(stdout.every((text, index) => text === String(index + 1))).toBe(true);
  expect(lines.map((line) => line.seq)).toEqual(lines.map((_, index) => index + 1));
}, 60_000);
