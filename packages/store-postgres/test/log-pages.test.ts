import { makeTestJob } from '@hodei/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresStore, type PostgresStore } from '../src';
import { READ_PAGE_MAX_CHARS } from '../src/postgres-store';
import { createTestDatabase, type TestDatabase } from './helpers';

let database: TestDatabase;
let store: PostgresStore;

beforeAll(async () => {
  database = await createTestDatabase();
  store = createPostgresStore({ connectionString: database.url }, { schema: 'log_pages' });
});

afterAll(async () => {
  await store?.close();
  await database?.drop();
});

describe('readLogBatches pages of long lines', () => {
  it('stops a page before its text passes the cap, and the following pages return every line once, in order', async () => {
    const job = makeTestJob();
    await store.insertJob(job);
    // 24 lines of 1 MiB each (a job printing without newlines is cut into long lines): 3 cap's worth.
    const line = (index: number) => String.fromCharCode(97 + index).repeat(1024 * 1024);
    for (let index = 0; index < 24; index += 4) {
      await store.appendLogs(job.id, [0, 1, 2, 3].map((offset) => ({ timestamp: 1_000 + index + offset, stream: 'stdout' as const, text: line(index + offset) })));
    }
    const first = await store.readLogBatches(job.id, 1, 16_384);
    const firstText = first.reduce((chars, batch) => chars + batch.text.length, 0);
    expect(firstText).toBeLessThanOrEqual(READ_PAGE_MAX_CHARS);
    expect(firstText).toBeGreaterThan(0);
    const seqs: number[] = [];
    let next = 1;
    for (;;) {
      const page = await store.readLogBatches(job.id, next, 16_384);
      if (page.length === 0) break;
      for (const batch of page) {
        batch.textLengths.forEach((length, index) => {
          const seq = batch.firstSeq + index;
          const start = batch.textLengths.slice(0, index).reduce((sum, value) => sum + value, 0);
          expect(batch.text.slice(start, start + length)).toBe(line(seq - 1));
          seqs.push(seq);
        });
        next = batch.firstSeq + batch.textLengths.length;
      }
    }
    expect(seqs).toEqual(Array.from({ length: 24 }, (_, index) => index + 1));
  }, 60_000);

  it('returns a line longer than the cap alone in its page', async () => {
    const job = makeTestJob();
    await store.insertJob(job);
    const huge = 'x'.repeat(READ_PAGE_MAX_CHARS + 10);
    await store.appendLogs(job.id, [
      { timestamp: 1, stream: 'stdout', text: huge },
      { timestamp: 2, stream: 'stdout', text: 'after' },
    ]);
    const [page] = await store.readLogBatches(job.id, 1, 100);
    expect(page!.textLengths).toEqual([huge.length]);
    const [rest] = await store.readLogBatches(job.id, 2, 100);
    expect(rest!.text).toBe('after');
  }, 60_000);

  it('keeps a page whose seqs have a gap (lines not written by the store) within the cap', async () => {
    const job = makeTestJob();
    await store.insertJob(job);
    // Three lines of 3 MiB at seqs 1, 3 and 4, written straight into the table: the capped page holds 1 and 3.
    const long = (letter: string) => letter.repeat(3 * 1024 * 1024);
    await store.pool.query(
      `INSERT INTO log_pages.job_logs (job_id, seq, ts, stream, text) VALUES ($1, 1, now(), 'stdout', $2), ($1, 3, now(), 'stdout', $3), ($1, 4, now(), 'stdout', $4)`,
      [job.id, long('a'), long('b'), long('c')],
    );
    const page = await store.readLogBatches(job.id, 1, 100);
    expect(page.reduce((chars, batch) => chars + batch.text.length, 0)).toBeLessThanOrEqual(READ_PAGE_MAX_CHARS);
    expect(page.map((batch) => [batch.firstSeq, batch.textLengths.length])).toEqual([
      [1, 1],
      [3, 1],
    ]);
  }, 60_000);
});
