import { packLogLineBatch } from '@hodei/core';
import { makeTestJob, makeTestWorker } from '@hodei/core/testing';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresStore, type PostgresStore } from '../src';
import { createTestDatabase, type TestDatabase } from './helpers';

// PostgresStore runs concurrent insertJob/updateJob/appendAudit calls as shared statements; the store
// conformance suite covers their outcomes. These are the PostgreSQL-specific edges of that batching.
describe('PostgresStore batched statements', () => {
  let database: TestDatabase;
  let admin: pg.Pool;
  let store: PostgresStore | undefined;
  let schemas = 0;

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = new pg.Pool({ connectionString: database.url, max: 2 });
  });

  afterEach(async () => {
    await store?.close();
    store = undefined;
  });

  afterAll(async () => {
    await admin?.end();
    await database?.drop();
  });

  function newStore(): PostgresStore {
    schemas += 1;
    store = createPostgresStore({ connectionString: database.url }, { schema: `batching_${schemas}`, poolSize: 4 });
    return store;
  }

  it("reads the jobs asked for in one turn in one statement, each caller getting its own (or undefined)", async () => {
    const s = newStore();
    const jobs = [makeTestJob(), makeTestJob(), makeTestJob()];
    await Promise.all(jobs.map((job) => s.insertJob(job)));
    await s.appendLogs(jobs[1]!.id, [{ timestamp: 1, stream: 'stdout', text: 'a' }, { timestamp: 2, stream: 'stdout', text: 'b' }]);
    const statements: string[] = [];
    const query = s.pool.query.bind(s.pool);
    s.pool.query = ((config: { text?: string }, ...rest: unknown[]) => {
      statements.push(typeof config === 'string' ? config : (config.text ?? ''));
      return (query as (...args: unknown[]) => unknown)(config, ...rest);
    }) as typeof s.pool.query;
    const [a, b, missing, c, again] = await Promise.all([
      s.getJob(jobs[0]!.id),
      s.getJobAndLogCount(jobs[1]!.id),
      s.getJob('job_missing'),
      s.getJob(jobs[2]!.id),
      s.getJob(jobs[0]!.id),
    ]);
    expect([a, missing, c, again]).toEqual([jobs[0], undefined, jobs[2], jobs[0]]);
    expect(b).toEqual({ job: jobs[1], logCount: 2 });
    expect(statements).toHaveLength(1);
    // Each caller gets its own job: two reads of one job in one turn share no object.
    expect(again!.spec).not.toBe(a!.spec);
    again!.spec.env.CHANGED = 'yes';
    expect(a!.spec.env).not.toHaveProperty('CHANGED');
  });

  it('fails only the read of an id PostgreSQL refuses, and finds a job whose id holds a lone surrogate as its stored id does', async () => {
    const s = newStore();
    const odd = makeTestJob({ id: 'job_\ud800_lone' });
    const fine = makeTestJob();
    await Promise.all([s.insertJob(odd), s.insertJob(fine)]);
    const [refused, found, surrogate] = await Promise.allSettled([s.getJob('job_nul_\u0000'), s.getJob(fine.id), s.getJob(odd.id)]);
    expect(refused).toMatchObject({ status: 'rejected', reason: { code: 'INVALID_ARGUMENT' } });
    expect(found).toEqual({ status: 'fulfilled', value: fine });
    expect(surrogate).toMatchObject({ status: 'fulfilled', value: { id: 'job_\ufffd_lone' } });
  });

  it('reads jobs after a later migration added a column to jobs (a server of the next release): its prepared read still works', async () => {
    const s = newStore();
    const job = makeTestJob();
    await s.insertJob(job);
    // Prepare the read on every connection of the pool, then change the table under it.
    await Promise.all(Array.from({ length: 8 }, () => s.getJob(job.id)));
    await Promise.all(Array.from({ length: 4 }, async () => (await s.pool.connect()).release()));
    for (let round = 0; round < 4; round += 1) await Promise.all([s.getJob(job.id), s.getJobAndLogCount(job.id)]);
    await admin.query(`ALTER TABLE batching_${schemas}.jobs ADD COLUMN next_release_column integer`);
    for (let round = 0; round < 8; round += 1) expect(await Promise.all([s.getJob(job.id), s.getJobAndLogCount(job.id)])).toEqual([job, { job, logCount: 0 }]);
  });

  it("records a worker's running jobs after a later migration added a column to workers: its prepared writes still work", async () => {
    const s = newStore();
    await s.migrate();
    const worker = { ...makeTestWorker({ state: 'READY', capacity: 4 }) };
    await s.insertWorker(worker);
    // Prepare both statements on every connection of the pool, then change the table under them.
    for (let round = 0; round < 4; round += 1) {
      await Promise.all(Array.from({ length: 4 }, (_, index) => s.addRunningJobs!(worker.id, [`j${round}-${index}`])));
      await Promise.all(Array.from({ length: 4 }, (_, index) => s.removeRunningJobs!(worker.id, [`j${round}-${index}`], Date.now())));
    }
    await admin.query(`ALTER TABLE batching_${schemas}.workers ADD COLUMN next_release_column integer`);
    for (let round = 0; round < 4; round += 1) {
      const added = await Promise.all(Array.from({ length: 4 }, (_, index) => s.addRunningJobs!(worker.id, [`k${round}-${index}`])));
      expect(added.every((record) => record?.id === worker.id)).toBe(true);
      const removed = await Promise.all(Array.from({ length: 4 }, (_, index) => s.removeRunningJobs!(worker.id, [`k${round}-${index}`], Date.now())));
      expect(removed.every((record) => record?.id === worker.id)).toBe(true);
    }
    expect(await s.getWorker(worker.id)).toMatchObject({ runningJobIds: [], state: 'READY' });
  });

  it('inserts a turn of big specs whose sum passes PostgreSQL\'s 256 MiB jsonb cap: each valid job is queued', async () => {
    const store = newStore();
    const content = 'x'.repeat(900 * 1024); // each spec within core's 1 MiB
    const jobs = Array.from({ length: 300 }, () => {
      const base = makeTestJob();
      return { ...base, spec: { ...base.spec, script: { interpreter: '/bin/bash', content } } };
    });
    const settled = await Promise.allSettled(jobs.map((job) => store.insertJob(job)));
    expect(settled.filter((outcome) => outcome.status === 'rejected')).toEqual([]);
    const { rows } = await admin.query(`SELECT count(*)::int AS n FROM batching_${schemas}.jobs`);
    expect(rows[0].n).toBe(300);
  }, 120_000);

  it('inserts the jobs of one turn in call order, whatever fields they set, with their specs as given', async () => {
    const s = newStore();
    const base = makeTestJob();
    const odd = { ...base.spec, name: 'quotes " and \\ backslashes, commas, {braces}, ]brackets[ and ünïcödé', env: { A: 'null', B: '' } };
    const jobs = [
      makeTestJob({ createdAt: 5 }),
      makeTestJob({ createdAt: 5, spec: odd, notBefore: 1 }),
      makeTestJob({ createdAt: 5 }),
      makeTestJob({ createdAt: 5, spec: odd }),
    ];
    const audit = { eventType: 'job.queued', correlationId: jobs[2]!.id, occurredAt: 9, details: { note: 'not derived' } };
    await Promise.all(jobs.map((job, index) => s.insertJob(job, index === 2 ? audit : undefined)));
    expect(await s.queuedJobs(10)).toEqual(jobs);
    expect(await s.listAudit(jobs[2]!.id)).toEqual([audit]);
    // A spec PostgreSQL refuses (jsonb holds no NUL) fails its own call only.
    const refused = makeTestJob({ spec: { ...base.spec, name: 'nul \u0000 here' } });
    const fine = makeTestJob();
    const outcomes = await Promise.allSettled([s.insertJob(refused), s.insertJob(fine)]);
    expect(outcomes[0]).toMatchObject({ status: 'rejected', reason: { code: 'INVALID_ARGUMENT' } });
    expect(outcomes[1]).toMatchObject({ status: 'fulfilled' });
    expect(await s.getJob(fine.id)).toEqual(fine);
    // A duplicate id in a later run of the batch (another shape) fails that call alone: the jobs of the runs
    // before it are in, and their callers told so (not CONFLICT, as a retry of their ids would say).
    const first = makeTestJob();
    const second = makeTestJob({ notBefore: 7 });
    const again = { ...fine, notBefore: 8 };
    const batch = await Promise.allSettled([s.insertJob(first), s.insertJob(second), s.insertJob(again)]);
    expect(batch.map((outcome) => outcome.status)).toEqual(['fulfilled', 'fulfilled', 'rejected']);
    expect(batch[2]).toMatchObject({ reason: { code: 'CONFLICT' } });
    expect(await s.getJob(first.id)).toEqual(first);
    expect(await s.getJob(second.id)).toEqual(second);
  });

  it('compares guard states as whole strings, whatever characters they hold', async () => {
    const s = newStore();
    const job = makeTestJob();
    await s.insertJob(job);
    const odd = ['QUEUED"', 'QUEUED,RUNNING', 'QUEUED\\', '{QUEUED}', 'NULL'] as never[];
    const [refused, applied] = await Promise.all([
      s.updateJob(job.id, { states: odd }, { state: 'ASSIGNED' }),
      s.updateJob(job.id, { states: [...odd, 'QUEUED'] }, { state: 'ASSIGNED' }),
    ]);
    expect(refused).toBeUndefined();
    expect(applied).toMatchObject({ id: job.id, state: 'ASSIGNED' });
  });

  it('fails an append to an unknown job alone (NOT_FOUND), the appends made with it are stored', async () => {
    const s = newStore();
    const job = makeTestJob();
    await s.insertJob(job);
    const line = { timestamp: 1, stream: 'stdout' as const, text: 'kept' };
    const [stored, missing] = await Promise.allSettled([s.appendLogs(job.id, [line]), s.appendLogs('job_unknown', [line])]);
    expect(stored).toEqual({ status: 'fulfilled', value: 1 });
    expect(missing.status).toBe('rejected');
    expect(((missing as PromiseRejectedResult).reason as { code?: string }).code).toBe('NOT_FOUND');
    expect((await s.readLogs(job.id, 1, 10)).map((read) => read.text)).toEqual(['kept']);
  });

  it('still runs the calls made before close()', async () => {
    const s = newStore();
    await s.migrate();
    const jobs = [makeTestJob(), makeTestJob(), makeTestJob()];
    const inserted = Promise.all(jobs.map((job) => s.insertJob(job)));
    await s.close();
    await inserted;
    const { rows } = await admin.query(`SELECT count(*)::int AS n FROM batching_${schemas}.jobs`);
    expect(rows[0].n).toBe(3);
  });

  it('plans a statement once for small batches too: its prepared statement settles on the generic plan', async () => {
    schemas += 1;
    // One connection, so every statement below is prepared on it and pg_prepared_statements shows them.
    const s = (store = createPostgresStore({ connectionString: database.url }, { schema: `batching_${schemas}`, poolSize: 1 }));
    // A table of some size: on a nearly empty one every plan costs about the same.
    await Promise.all(Array.from({ length: 2_000 }, () => s.insertJob(makeTestJob())));
    for (let index = 0; index < 12; index += 1) {
      const job = makeTestJob();
      await s.insertJob(job, { eventType: 'job.queued', correlationId: job.id, occurredAt: 1 });
      await s.updateJob(job.id, { states: ['QUEUED'], epoch: 0 }, { state: 'ASSIGNED', workerId: 'w_1', epoch: 1 }, {
        eventType: 'job.assigned',
        correlationId: job.id,
        occurredAt: 2,
      });
      await s.appendLogs(job.id, [{ timestamp: 3, stream: 'stdout', text: 'one line' }]);
      await s.appendLogBatch(job.id, packLogLineBatch([{ timestamp: 4, stream: 'stderr', text: 'a batch line' }]));
    }
    const { rows } = await s.pool.query<{ kind: string; custom_plans: string }>(
      // The statements run at least 6 times (the 2,000 jobs above are inserted by a statement of their own shape, 4 times).
      `SELECT left(statement, 20) AS kind, custom_plans FROM pg_prepared_statements
       WHERE statement LIKE '%unnest(%' AND custom_plans + generic_plans >= 6 ORDER BY 1`,
    );
    // PostgreSQL tries five custom plans, then keeps the generic plan unless a custom one looked cheaper (a
    // one-row batch would, and would be planned again on every execution: about as costly as running it).
    expect(rows.map((row) => ({ kind: row.kind, custom: Number(row.custom_plans) }))).toEqual([
      { kind: 'WITH batch AS (\n  SE', custom: 5 },
      { kind: 'WITH batch AS (\n  SE', custom: 5 },
      { kind: 'WITH inserted AS (\n ', custom: 5 },
      // The assignment by update: it reads the job as locked first (live-rows-sql.ts, lockedJobsSql).
      { kind: 'WITH locked AS (SELE', custom: 5 },
    ]);
  });

  it('keeps working when a column is added to the jobs table while its statements are prepared', async () => {
    const s = newStore();
    const job = makeTestJob();
    await s.insertJob(job);
    await s.updateJob(job.id, { states: ['QUEUED'] }, { state: 'ASSIGNED', workerId: 'w_1', epoch: 1 });
    // Another server's newer version migrating the shared schema.
    await admin.query(`ALTER TABLE batching_${schemas}.jobs ADD COLUMN added_later text`);
    const next = makeTestJob();
    await s.insertJob(next);
    const updated = await s.updateJob(next.id, { states: ['QUEUED'] }, { state: 'ASSIGNED', workerId: 'w_1', epoch: 1 });
    expect(updated).toMatchObject({ id: next.id, state: 'ASSIGNED', workerId: 'w_1', epoch: 1 });
  });
});
