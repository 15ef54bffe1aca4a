import { HodeiError } from '@hodei/core';
import { makeTestJob } from '@hodei/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresStore } from '../src';
import { createTestDatabase, lockJob, type TestDatabase } from './helpers';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));


/**
 * A store with two updateJob statements in flight, made in two turns, both waiting on a lock another client holds
 * on a job's row (as many as may be in flight), and `other`, a second job, free.
 */
async function twoUpdatesHeldUp(url: string, schema: string) {
  const store = createPostgresStore({ connectionString: url }, { schema, poolSize: 6 });
  const [x, other] = [makeTestJob(), makeTestJob()];
  await store.insertJob(x);
  await store.insertJob(other);
  const lock = await lockJob(url, schema, x.id);
  const held = [store.updateJob(x.id, {}, { signal: 'a' })];
  await sleep(50);
  held.push(store.updateJob(x.id, {}, { signal: 'b' }));
  await sleep(50);
  return { store, other, lock, held };
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
    const { store, other, lock, held } = await twoUpdatesHeldUp(db.url, 'held_up');
    try {
      const update = store.updateJob(other.id, {}, { signal: 'c' });
      const outcome = await Promise.race([update.then((job) => job?.signal), sleep(5_000).then(() => 'still waiting')]);
      expect(outcome).toBe('c');
      await lock.release();
      expect((await Promise.all(held)).map((job) => job?.signal)).toEqual(['a', 'b']);
    } finally {
      await lock.release().catch(() => undefined);
      await store.close();
    }
  });

  it('close() lets every update made before it run, repeated updates of one job included', async () => {
    const { store, other: z, lock, held: calls } = await twoUpdatesHeldUp(db.url, 'closing');
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
