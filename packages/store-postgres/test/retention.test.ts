import { createPlatform, type Platform } from '@hodei/core';
import { ProcessProvider } from '@hodei/provider-process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresStore, type PostgresStore } from '../src';
import { createTestDatabase, until, type TestDatabase } from './helpers';

describe('retention on PostgreSQL', () => {
  let db: TestDatabase;
  let store: PostgresStore;
  let platform: Platform;

  beforeAll(async () => {
    db = await createTestDatabase();
    store = createPostgresStore({ connectionString: db.url }, { poolSize: 4 });
    platform = await createPlatform({ store, providers: [new ProcessProvider({ maxWorkers: 1 })], retention: '2s' });
  });

  afterAll(async () => {
    await platform?.close();
    await store?.close();
    await db?.drop();
  });

  it('deletes finished jobs and their log lines once older than the retention; unfinished jobs and audit events stay', async () => {
    const finished = await platform.client.queue({ name: 'done', command: 'echo one; echo two' });
    const failed = await platform.client.queue({ name: 'failed', command: 'echo oops; exit 1' });
    const waiting = await platform.client.queue({ name: 'waiting', command: 'true', labels: { site: 'nowhere' } });
    expect((await platform.client.wait(finished.id)).state).toBe('SUCCEEDED');
    expect((await platform.client.wait(failed.id)).state).toBe('FAILED');
    expect((await store.readLogs(finished.id, 1, 10)).filter((line) => line.stream === 'stdout')).toHaveLength(2);

    await until(async () => ((await store.getJob(finished.id)) || (await store.getJob(failed.id)) ? undefined : true), 20_000, 'the sweep');
    expect(await store.readLogs(finished.id, 1, 10)).toEqual([]);
    expect(await store.readLogs(failed.id, 1, 10)).toEqual([]);
    const { rows } = await store.pool.query('SELECT count(*)::int AS n FROM job_logs WHERE job_id = ANY($1)', [[finished.id, failed.id]]);
    expect(rows[0].n).toBe(0);
    expect((await store.getJob(waiting.id))?.state).toBe('QUEUED');
    expect((await store.listAudit(finished.id)).map((event) => event.eventType)).toContain('job.finished');
    await platform.client.cancel(waiting.id);
  }, 60_000);
});
