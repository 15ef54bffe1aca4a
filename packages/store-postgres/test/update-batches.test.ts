import { HodeiError } from '@hodei/core';
import { makeTestJob } from '@hodei/core/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresStore } from '../src';
import { createTestDatabase, type TestDatabase } from './helpers';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A client holding the row lock of job `id` in schema `schema` until `release()`. */
async function lockJob(url: string, schema: string, id: string): Promise<{ release(): Promise<void> }> {
  const locker = new pg.Client({ connectionString: url });
  await locker.connect();
  await locker.query('BEGIN');
  await locker.query(`SELECT 1 FROM ${schema}.jobs WHERE id = $1 FOR UPDATE`, [id]);
  return {
    release: async () => {
      await locker.query('COMMIT');
      await locker.end();
    },
  };
}

// updateJob statements are limited in number in flight (calls made meanwhile share the next statement): what
// that limit must not cost.
describe('PostgresStore updateJob batches', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('an update of one job is not held up by statements waiting on another job’s row lock', async () => {
    const store = createPostgresStore({ connectionString: db.url }, { schema: 'held_up', poolSize: 6 });
    const [x, y] = [makeTestJob(), makeTestJob()];
    await store.insertJob(x);
    await store.insertJob(y);
    const lock = await lockJob(db.url, 'held_up', x.id);
    try {
      // Two statements, in two turns, both waiting on x's lock: as many as may be in flight.
      const waiting = [store.updateJob(x.id, {}, { signal: 'a' })];
      await sleep(50);
      waiting.push(store.updateJob(x.id, {}, { signal: 'b' }));
      await sleep(50);
      const other = store.updateJob(y.id, {}, { signal: 'c' });
      const outcome = await Promise.race([other.then((job) => job?.signal), sleep(5_000).then(() => 'still waiting')]);
      expect(outcome).toBe('c');
      await lock.release();
      expect((await Promise.all(waiting)).map((job) => job?.signal)).toEqual(['a', 'b']);
    } finally {
      await lock.release().catch(() => undefined);
      await store.close();
    }
  });

  it('close() lets every update made before it run, repeated updates of one job included', async () => {
    const store = createPostgresStore({ connectionString: db.url }, { schema: 'closing', poolSize: 6 });
    const [x, z] = [makeTestJob(), makeTestJob()];
    await store.insertJob(x);
    await store.insertJob(z);
    const lock = await lockJob(db.url, 'closing', x.id);
    const calls = [store.updateJob(x.id, {}, { signal: 'a' })];
    await sleep(20);
    calls.push(store.updateJob(x.id, {}, { signal: 'b' }));
    await sleep(20);
    // Queued behind the two statements in flight, z's two updates share one batch: two rounds.
    calls.push(store.updateJob(z.id, { states: ['QUEUED'] }, { signal: 'z1' }));
    await Promise.resolve();
    calls.push(store.updateJob(z.id, { states: ['QUEUED'] }, { signal: 'z2' }));
    const closing = store.close();
    await sleep(100);
    await lock.release();
    const settled = await Promise.allSettled(calls);
    await closing;
    expect(settled.map((outcome) => (outcome.status === 'fulfilled' ? outcome.value?.signal : String(outcome.reason)))).toEqual(['a', 'b', 'z1', 'z2']);
  });

  it('a value that cannot be stored fails only its own call, with INVALID_ARGUMENT', async () => {
    const store = createPostgresStore({ connectionString: db.url }, { schema: 'bad_value', poolSize: 3 });
    try {
      const jobs = [makeTestJob(), makeTestJob(), makeTestJob()];
      await Promise.all(jobs.map((job) => store.insertJob(job)));
      const settled = await Promise.allSettled([
        store.updateJob(jobs[0]!.id, {}, { signal: ['SIGTERM'] as never }),
        store.updateJob(jobs[1]!.id, {}, { signal: 'SIGKILL' }),
        store.updateJob(jobs[2]!.id, {}, { signal: 'SIGINT' }),
      ]);
      const [bad, ...good] = settled;
      expect(bad?.status).toBe('rejected');
      const error = (bad as PromiseRejectedResult).reason;
      expect(HodeiError.isInstance(error) && error.code).toBe('INVALID_ARGUMENT');
      expect(good.map((outcome) => outcome.status === 'fulfilled' && outcome.value?.signal)).toEqual(['SIGKILL', 'SIGINT']);
      expect((await store.getJob(jobs[0]!.id))?.signal).toBeUndefined();
    } finally {
      await store.close();
    }
  });
});
