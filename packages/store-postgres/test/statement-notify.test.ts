import { makeTestJob } from '@hodei/core/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { changedChannel, createPostgresStore, type PostgresStore } from '../src';
import { createTestDatabase, until, type TestDatabase } from './helpers';

describe('job change NOTIFY from the statements (migration 7)', () => {
  let db: TestDatabase;
  let store: PostgresStore;
  let listener: pg.Client;
  const heard: string[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    store = createPostgresStore({ connectionString: db.url }, { poolSize: 2 });
    await store.migrate();
    listener = new pg.Client({ connectionString: db.url });
    await listener.connect();
    listener.on('notification', (message) => message.payload && heard.push(message.payload));
    await listener.query(`LISTEN ${changedChannel('public')}`);
  });

  afterAll(async () => {
    await listener?.end();
    await store?.close();
    await db?.drop();
  });

  const heardOf = (id: string) => heard.filter((payload) => payload === id).length;
  const settle = () => new Promise((resolve) => setTimeout(resolve, 300));

  it("announces each state change the store's claims and updates make, once, without the per-row trigger on its own connections", async () => {
    const { rows } = await store.pool.query(`SELECT current_setting('hodei.notify_by_statement', true) AS setting`);
    expect(rows[0].setting).toBe('on');
    const claimedJob = makeTestJob();
    const updatedJob = makeTestJob();
    await store.insertJob(claimedJob);
    await store.insertJob(updatedJob);
    expect(await store.claimJobs({ workerId: 'w_1', labels: {}, limit: 1, now: Date.now() })).toHaveLength(1);
    expect(await store.updateJob(updatedJob.id, { states: ['QUEUED'] }, { state: 'CANCELLED', completedAt: Date.now() })).toBeDefined();
    await until(() => (heardOf(claimedJob.id) && heardOf(updatedJob.id)) || undefined, 10_000, 'both notifications');
    await settle();
    expect([heardOf(claimedJob.id), heardOf(updatedJob.id)]).toEqual([1, 1]);
  });

  it('runs no per-row trigger for the claims and updates of its own connections', async () => {
    const { rows } = await store.pool.query(`SELECT pg_get_functiondef('hodei_notify_job_changed'::regproc) AS definition`);
    await store.pool.query(`CREATE OR REPLACE FUNCTION hodei_notify_job_changed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'trigger ran'; END $$`);
    try {
      const jobs = [makeTestJob(), makeTestJob()];
      for (const job of jobs) await store.insertJob(job);
      const [claimed] = await store.claimJobs({ workerId: 'w_2', labels: {}, limit: 1, now: Date.now() });
      const other = jobs.find((job) => job.id !== claimed!.id)!;
      expect(await store.updateJob(other.id, { states: ['QUEUED'] }, { state: 'CANCELLED', completedAt: Date.now() })).toBeDefined();
    } finally {
      await store.pool.query(rows[0].definition);
    }
  });

  it("keeps the session options of PGOPTIONS on the store's connections, with its own flag", async () => {
    const before = process.env.PGOPTIONS;
    process.env.PGOPTIONS = '-c statement_timeout=1234';
    const withOptions = createPostgresStore({ connectionString: db.url }, { poolSize: 1, autoMigrate: false });
    try {
      const { rows } = await withOptions.pool.query(
        `SELECT current_setting('statement_timeout') AS timeout, current_setting('hodei.notify_by_statement', true) AS setting`,
      );
      expect(rows[0]).toEqual({ timeout: '1234ms', setting: 'on' });
    } finally {
      if (before === undefined) delete process.env.PGOPTIONS;
      else process.env.PGOPTIONS = before;
      await withOptions.close();
    }
  });

  it('still announces a state change another program writes (the trigger covers every other session)', async () => {
    const job = makeTestJob();
    await store.insertJob(job);
    const other = new pg.Client({ connectionString: db.url });
    await other.connect();
    try {
      await other.query(`UPDATE jobs SET state = 'CANCELLED' WHERE id = $1`, [job.id]);
      await other.query(`UPDATE jobs SET error_message = 'no state change' WHERE id = $1`, [job.id]);
    } finally {
      await other.end();
    }
    await until(() => heardOf(job.id) || undefined, 10_000, "the trigger's notification");
    await settle();
    expect(heardOf(job.id)).toBe(1);
  });
});
