import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPlatform, type Job, type Platform } from '@hodei/core';
import { ProcessProvider } from '@hodei/provider-process';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresStore, type PostgresStore } from '../src';
import { createTestDatabase, until, type TestDatabase } from './helpers';
import { startTwoServers, type TwoServers } from './two-servers';

const TERMINAL = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT']);

describe('two servers on one database', () => {
  let servers: TwoServers;
  let storeA: PostgresStore;
  let storeB: PostgresStore;
  let a: Platform;
  let b: Platform;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hodei-multi-'));
    servers = await startTwoServers({
      store: { poolSize: 5, listenHealthCheckMs: 500 },
      providerA: { maxWorkers: 2, stopGraceMs: 2_000 },
      providerB: { maxWorkers: 2, stopGraceMs: 2_000 },
    });
    ({ storeA, storeB, a, b } = servers);
  });

  afterAll(async () => {
    await servers?.close();
    expect([...(servers?.providerA.pids ?? []), ...(servers?.providerB.pids ?? [])]).toEqual([]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('runs 200 jobs queued alternately through both servers, each exactly once', async () => {
    const jobs: Job[] = [];
    for (let index = 0; index < 200; index += 1) {
      const client = index % 2 === 0 ? a.client : b.client;
      jobs.push(await client.queue({ name: `multi-${index}`, command: 'echo x >> "$DIR/$HODEI_JOB_ID"', env: { DIR: dir } }));
    }
    const finished = await until(
      async () => {
        const all = await Promise.all(jobs.map((job) => storeA.getJob(job.id)));
        return all.every((job) => job && TERMINAL.has(job.state)) ? (all as Job[]) : undefined;
      },
      120_000,
    );
    expect(finished.filter((job) => job.state !== 'SUCCEEDED').map((job) => `${job.id}:${job.state}:${job.errorMessage}`)).toEqual([]);
    // Executions, not states: one file per job, each with exactly one line.
    const files = readdirSync(dir);
    expect(files.sort()).toEqual(jobs.map((job) => job.id).sort());
    const lines = files.map((file) => readFileSync(join(dir, file), 'utf8'));
    expect(lines.filter((content) => content !== 'x\n')).toEqual([]);
    // Several workers (of both servers) did the work.
    expect(new Set(finished.map((job) => job.workerId)).size).toBeGreaterThanOrEqual(2);
  }, 180_000);

  it('a second claim of the same job fails (compare-and-set on state and epoch)', async () => {
    const job = await a.client.queue({ name: 'cas', command: 'true' });
    const stored = (await storeA.getJob(job.id))!;
    // Four claims race at the epoch read (a scheduler may already have taken the job): at most one wins.
    const claims = await Promise.all(
      [storeA, storeB, storeA, storeB].map((store, index) =>
        store.updateJob(job.id, { states: ['QUEUED'], epoch: stored.epoch }, { state: 'ASSIGNED', workerId: `w-fake-${index}`, epoch: stored.epoch + 1 }),
      ),
    );
    expect(claims.filter(Boolean).length).toBeLessThanOrEqual(1);
    const fake = claims.find(Boolean);
    if (fake) {
      // Hand it back so the engines run it.
      await storeA.updateJob(job.id, { states: ['ASSIGNED'], epoch: fake.epoch }, { state: 'FAILED', failureReason: 'SHUTDOWN', completedAt: Date.now() });
    }
  });
});

describe('wake-ups between servers (LISTEN/NOTIFY)', () => {
  let db: TestDatabase;
  let storeA: PostgresStore;
  let storeB: PostgresStore;
  let a: Platform;
  let b: Platform;

  async function finished(store: PostgresStore, id: string): Promise<Job> {
    return until(async () => {
      const job = await store.getJob(id);
      return job && TERMINAL.has(job.state) ? job : undefined;
    });
  }

  beforeAll(async () => {
    db = await createTestDatabase();
    storeB = createPostgresStore({ connectionString: db.url }, { poolSize: 4, listenHealthCheckMs: 500 });
    b = await createPlatform({
      store: storeB,
      providers: [new ProcessProvider({ maxWorkers: 1, stopGraceMs: 2_000, labels: { pool: 'b' } })],
      // B polls once in 10 minutes: a job queued through A that B runs within the tests' deadlines was
      // announced by NOTIFY, not found by polling.
      pollIntervalMs: 600_000,
    });
    // B gets the only worker, warm and READY, before A exists.
    const warm = await b.client.queue({ name: 'warm-up', command: 'true', labels: { pool: 'b' } });
    expect((await b.client.wait(warm.id)).state).toBe('SUCCEEDED');
    await until(async () => ((await storeB.listWorkers({ states: ['READY'] })).length === 1 ? true : undefined));
    storeA = createPostgresStore({ connectionString: db.url }, { poolSize: 4, listenHealthCheckMs: 500 });
    // Each engine schedules only its own workers, so A could provision one of its own and race B for the
    // job: A's provider offers another pool, so only B (woken by NOTIFY) can run jobs asking for pool b.
    a = await createPlatform({
      store: storeA,
      providers: [new ProcessProvider({ maxWorkers: 1, stopGraceMs: 2_000, labels: { pool: 'a' } })],
    });
  });

  afterAll(async () => {
    await a?.close();
    await b?.close();
    await storeA?.close();
    await storeB?.close();
    await db?.drop();
  });

  it('a job queued through A wakes B (NOTIFY), which alone has capacity and runs it', async () => {
    let heardByB = 0;
    const off = storeB.onJobQueued(() => (heardByB += 1));
    try {
      const [bWorker] = await storeB.listWorkers({ states: ['READY', 'BUSY'] });
      for (let index = 0; index < 5; index += 1) {
        const before = heardByB;
        const queued = await a.client.queue({ name: `wake-${index}`, command: 'true', labels: { pool: 'b' } });
        const done = await finished(storeA, queued.id);
        expect(done.state).toBe('SUCCEEDED');
        expect(done.workerId).toBe(bWorker!.id);
        expect(heardByB).toBeGreaterThan(before);
      }
    } finally {
      off();
    }
  });

  it('re-establishes the LISTEN connection after it is terminated', async () => {
    let heard = 0;
    const off = storeB.onJobQueued(() => (heard += 1));
    try {
      const connectionsBefore = storeB.listenerConnections;
      const admin = new pg.Client({ connectionString: db.url });
      await admin.connect();
      try {
        const { rows } = await admin.query(
          `SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND datname = current_database()`,
        );
        // B's listener and A's.
        expect(rows.length).toBeGreaterThanOrEqual(2);
      } finally {
        await admin.end();
      }
      await until(() => (storeB.listenerConnections > connectionsBefore ? true : undefined), 10_000);
      const heardBefore = heard;
      const job = await a.client.queue({ name: 'after-terminate', command: 'true' });
      await until(() => (heard > heardBefore ? true : undefined), 5_000);
      expect((await finished(storeA, job.id)).state).toBe('SUCCEEDED');
    } finally {
      off();
    }
  });
});

describe('LISTEN connection watchdog', () => {
  it('a probe that fails ends the connection and another one is opened', async () => {
    const db = await createTestDatabase();
    const store = createPostgresStore({ connectionString: db.url }, { listenHealthCheckMs: 100 });
    try {
      await store.migrate();
      let heard = 0;
      const off = store.onJobQueued(() => (heard += 1));
      await until(() => (store.listenerConnections === 1 ? true : undefined));
      // Simulate a silent half-open socket: the connection stops answering (its socket is paused).
      const client = (store as unknown as { listener?: { connection: { stream: { pause(): void } } } }).listener!;
      client.connection.stream.pause();
      await until(() => (store.listenerConnections >= 2 ? true : undefined), 5_000);
      const heardBefore = heard;
      await store.insertJob({ id: 'j-watchdog', spec: { name: 'x', command: 'true' } as Job['spec'], state: 'QUEUED', attempt: 1, epoch: 0, createdAt: Date.now() });
      await until(() => (heard > heardBefore ? true : undefined), 5_000);
      off();
      expect((store as unknown as { listener?: unknown }).listener).toBeUndefined();
    } finally {
      await store.close();
      await db.drop();
    }
  });
});

describe('onJobQueued', () => {
  it('fires for an inserted QUEUED job and a return to QUEUED, not for other updates; unsubscribe closes the connection', async () => {
    const db = await createTestDatabase();
    const store = createPostgresStore({ connectionString: db.url });
    const other = createPostgresStore({ connectionString: db.url });
    try {
      await store.migrate();
      let heard = 0;
      const off = store.onJobQueued(() => (heard += 1));
      await until(() => (store.listenerConnections === 1 ? true : undefined));
      await new Promise((resolve) => setTimeout(resolve, 50));
      heard = 0;
      const spec = { name: 'x', command: 'true' } as Job['spec'];
      await other.insertJob({ id: 'j-1', spec, state: 'QUEUED', attempt: 1, epoch: 0, createdAt: Date.now() });
      await until(() => (heard === 1 ? true : undefined), 5_000);
      await other.updateJob('j-1', { states: ['QUEUED'], epoch: 0 }, { state: 'ASSIGNED', epoch: 1, workerId: 'w-1' });
      const requeued = await other.updateJob('j-1', { states: ['ASSIGNED'], epoch: 1 }, { state: 'QUEUED', epoch: 2, attempt: 2 });
      expect(requeued).toMatchObject({ id: 'j-1', state: 'QUEUED', epoch: 2, attempt: 2 });
      expect(requeued).not.toHaveProperty('hodei_notified');
      await until(() => (heard === 2 ? true : undefined), 5_000);
      // A guard that does not match: no update, no notification.
      expect(await other.updateJob('j-1', { states: ['ASSIGNED'] }, { state: 'QUEUED' })).toBeUndefined();
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(heard).toBe(2);
      off();
      expect((store as unknown as { listener?: unknown }).listener).toBeUndefined();
    } finally {
      await store.close();
      await other.close();
      await db.drop();
    }
  });
});
