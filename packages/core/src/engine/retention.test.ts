import { describe, expect, it } from 'vitest';
import { silentLogger } from '../ports/logger';
import { MemoryStore } from '../store/memory-store';
import { makeTestJob } from '../testing/store-conformance';
import { DEFAULT_RETENTION_MS, parseRetention, RetentionSweeper } from './retention';

describe('parseRetention', () => {
  it('reads durations, milliseconds and off, and defaults to 7 days', () => {
    expect(parseRetention(undefined)).toBe(DEFAULT_RETENTION_MS);
    expect(DEFAULT_RETENTION_MS).toBe(7 * 24 * 3_600_000);
    expect(parseRetention('12h')).toBe(12 * 3_600_000);
    expect(parseRetention(5_000)).toBe(5_000);
    expect(parseRetention(false)).toBeUndefined();
    expect(parseRetention('off')).toBeUndefined();
  });

  it('refuses anything else, naming the field', () => {
    for (const bad of ['soon', '0s', -1, 0, Number.NaN]) {
      expect(() => parseRetention(bad as string)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', field: 'retention' }));
    }
  });
});

describe('RetentionSweeper', () => {
  it('deletes at most one batch of finished jobs older than the retention per sweep', async () => {
    const store = new MemoryStore();
    const now = 1_700_000_000_000;
    const old = Array.from({ length: 5 }, (_, index) => makeTestJob({ state: 'SUCCEEDED', completedAt: now - 10_000 - index }));
    const fresh = makeTestJob({ state: 'FAILED', completedAt: now - 10 });
    for (const job of [...old, fresh]) await store.insertJob(job);
    const sweeper = new RetentionSweeper({ store, clock: { now: () => now }, logger: silentLogger, maxAgeMs: 1_000, batchSize: 3 });
    expect(await sweeper.sweep()).toBe(3);
    expect(await sweeper.sweep()).toBe(2);
    expect(await sweeper.sweep()).toBe(0);
    expect((await store.listJobs()).map((job) => job.id)).toEqual([fresh.id]);
  });
});
