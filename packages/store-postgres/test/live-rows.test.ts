import type { Job, JobGuard } from '@hodei/core';
import { makeTestJob } from '@hodei/core/testing';
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { MIGRATIONS, createPostgresStore, type PostgresStore } from '../src';
import { migrateWith } from '../src/migrate';
import { lockJob, useTestPool, type TestDatabase } from './helpers';

const T0 = 1_700_000_000_000;

/**
 * Every way the live rows of migration 8 can disagree with `jobs`: a QUEUED job without its exact queue row, a
 * claimed job (ASSIGNED, RUNNING) without its claim row, a row no job is in that state for. (A second row of one
 * key is allowed: readers dedupe.)
 */
async function disagreements(pool: pg.Pool): Promise<string[]> {
  const { rows } = await pool.query<{ problem: string }>(`
    SELECT 'no queue row: ' || j.id AS problem FROM jobs AS j WHERE j.state = 'QUEUED' AND NOT EXISTS (
      SELECT 1 FROM job_queue AS q WHERE q.id = j.id AND q.priority = j.priority AND q.created_at = j.created_at
        AND q.insert_seq = j.insert_seq AND q.not_before IS NOT DISTINCT FROM j.not_before AND q.labels = coalesce(j.spec -> 'labels', '{}'))
    UNION ALL
    SELECT 'stale queue row: ' || q.id FROM job_queue AS q WHERE NOT EXISTS (SELECT 1 FROM jobs AS j WHERE j.id = q.id AND j.state = 'QUEUED')
    UNION ALL
    SELECT 'no claim row: ' || j.id FROM jobs AS j WHERE j.state IN ('ASSIGNED', 'RUNNING') AND NOT EXISTS (
      SELECT 1 FROM job_claims AS c WHERE c.id = j.id AND c.worker_id = coalesce(j.worker_id, '') AND c.assigned_at = coalesce(j.assigned_at, '-infinity'))
    UNION ALL
    SELECT 'stale claim row: ' || c.id FROM job_claims AS c WHERE NOT EXISTS (
      SELECT 1 FROM jobs AS j WHERE j.id = c.id AND j.state IN ('ASSIGNED', 'RUNNING')
        AND coalesce(j.worker_id, '') = c.worker_id AND coalesce(j.assigned_at, '-infinity') = c.assigned_at)
    ORDER BY 1`);
  return rows.map((row) => row.problem);
}

/** A small deterministic PRNG (mulberry32), so a failing sequence can be replayed. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

type Step = (job: Job) => { guard: JobGuard; patch: Partial<Job> } | undefined;

/** The state changes the engine makes (and a few it could), each from the job as last read. */
const STEPS: Record<string, Step> = {
  start: (job) => (job.state === 'ASSIGNED' ? { guard: { states: ['ASSIGNED'], epoch: job.epoch }, patch: { state: 'RUNNING', startedAt: T0 + 2 } } : undefined),
  finish: (job) =>
    job.state === 'ASSIGNED' || job.state === 'RUNNING'
      ? { guard: { states: ['ASSIGNED', 'RUNNING'], epoch: job.epoch }, patch: { state: 'SUCCEEDED', completedAt: T0 + 3, exitCode: 0 } }
      : undefined,
  cancel: (job) => (job.state === 'QUEUED' ? { guard: { states: ['QUEUED'] }, patch: { state: 'CANCELLED', completedAt: T0 + 3 } } : undefined),
  requeue: (job) =>
    job.state === 'ASSIGNED' || job.state === 'RUNNING'
      ? {
          guard: { states: [job.state], epoch: job.epoch },
          patch: { state: 'QUEUED', workerId: undefined, assignedAt: undefined, startedAt: undefined, attempt: job.attempt + 1, notBefore: T0 + 50 },
        }
      : undefined,
  assign: (job) =>
    job.state === 'QUEUED'
      ? { guard: { states: ['QUEUED'], epoch: job.epoch }, patch: { state: 'ASSIGNED', workerId: 'w_patch', epoch: job.epoch + 1, assignedAt: T0 + 7 } }
      : undefined,
  move: (job) =>
    job.state === 'ASSIGNED' ? { guard: { states: ['ASSIGNED'] }, patch: { workerId: 'w_moved', assignedAt: T0 + 9 } } : undefined,
  // Due or not, by round: the claims' now runs from T0 + 100 to T0 + 139.
  backoff: (job) => (job.state === 'QUEUED' ? { guard: { states: ['QUEUED'] }, patch: { notBefore: T0 + 120 } } : undefined),
  timeOut: (job) => (job.state !== 'QUEUED' ? { guard: {}, patch: { state: 'TIMED_OUT', completedAt: T0 + 4 } } : undefined),
  revive: () => ({ guard: {}, patch: { state: 'QUEUED', workerId: undefined, assignedAt: undefined } }),
  unguardedRun: (job) => ({ guard: {}, patch: { state: 'RUNNING', workerId: `w_${job.epoch}`, assignedAt: T0 + job.epoch, epoch: job.epoch + 1 } }),
};

/**
 * Live rows twice for one of the jobs `ids` and one key: none when calls are made one after another (see
 * `exercise`; calls made at once may leave one, which goes when its job leaves that state).
 */
async function duplicates(pool: pg.Pool, ids: readonly string[]): Promise<string[]> {
  const { rows } = await pool.query<{ problem: string }>(
    `SELECT 'queue row twice: ' || q.id AS problem FROM job_queue AS q WHERE q.id = ANY($1)
     GROUP BY q.priority, q.created_at, q.insert_seq, q.id HAVING count(*) > 1
     UNION ALL
     SELECT 'claim row twice: ' || c.id FROM job_claims AS c WHERE c.id = ANY($1) GROUP BY c.worker_id, c.assigned_at, c.id HAVING count(*) > 1
     ORDER BY 1`,
    [ids],
  );
  return rows.map((row) => row.problem);
}

/** Runs `sql` as a writer that keeps no live rows (the trigger disabled, as by a bulk load): it leaves rows behind. */
async function withoutLiveRows(pool: pg.Pool, sql: string, params: unknown[]): Promise<void> {
  await pool.query('ALTER TABLE jobs DISABLE TRIGGER jobs_live_rows_updated');
  try {
    await pool.query(sql, params);
  } finally {
    await pool.query('ALTER TABLE jobs ENABLE TRIGGER jobs_live_rows_updated');
  }
}

/** A job queued through `store` with `priority`, high enough to put it at the head of the queue for its test. */
async function queuedAtTheHead(store: PostgresStore, priority: number): Promise<Job> {
  const job = makeTestJob({ spec: { ...makeTestJob().spec, priority } });
  await store.insertJob(job);
  return job;
}

/** The disagreements a job can never be left with: a live job without its row. */
const missing = (problems: string[]) => problems.filter((problem) => problem.startsWith('no '));

/**
 * Random store calls, checking the live rows after each round. `together`: a round's calls are made at once (they
 * share batched statements, and two statements may change one job at the same time: the later one, waiting for
 * the first's lock, reads the live rows as they were when it started, and may leave a row behind, never a job
 * without its row); else one after another (the rows then follow exactly).
 */
async function exercise(store: PostgresStore, pool: pg.Pool, seed: number, together: boolean): Promise<void> {
  const next = random(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  const ids: string[] = [];
  for (let round = 0; round < 40; round++) {
    const calls: unknown[] = [];
    for (let call = 0; call < 6; call++) {
      const roll = next();
      if (roll < 0.2 || ids.length < 3) {
        const labels = next() < 0.3 ? { os: 'linux' } : undefined;
        const job = makeTestJob({
          createdAt: T0 + Math.floor(next() * 5),
          spec: { ...makeTestJob().spec, priority: Math.floor(next() * 3), ...(labels ? { labels } : {}) },
          ...(next() < 0.15 ? { state: pick(['ASSIGNED', 'RUNNING', 'SUCCEEDED'] as const), workerId: next() < 0.5 ? 'w_0' : undefined, epoch: 1 } : {}),
        });
        ids.push(job.id);
        calls.push(together ? store.insertJob(job) : await store.insertJob(job));
      } else if (roll < 0.35) {
        const claim = store.claimJobs({ workerId: pick(['w_1', 'w_2']), labels: next() < 0.5 ? { os: 'linux' } : {}, limit: 1 + Math.floor(next() * 4), now: T0 + 100 + round });
        calls.push(together ? claim : await claim);
      } else {
        const id = pick(ids);
        const step = STEPS[pick(Object.keys(STEPS))]!;
        const update = store.getJob(id).then((job) => {
          const change = job && step(job);
          return change && store.updateJob(id, change.guard, change.patch);
        });
        calls.push(together ? update : await update);
      }
    }
    await Promise.all(calls);
    const problems = await disagreements(pool);
    expect(together ? missing(problems) : [...problems, ...(await duplicates(pool, ids))], `seed ${seed}, round ${round}`).toEqual([]);
  }
  // The end of a retention sweep deletes the rows a race left behind.
  await store.deleteFinishedJobs(T0 - 1, 1);
  expect(await disagreements(pool), `seed ${seed}, after the sweep`).toEqual([]);
}

describe('the live rows of migration 8 (job_queue, job_claims)', () => {
  const testPool = useTestPool(4);
  let pool: pg.Pool;
  let db: TestDatabase;
  beforeAll(() => {
    ({ pool, database: db } = testPool());
  });

  it('follow every store call exactly, on the store\'s own pool (its statements keep them, the trigger is skipped)', async () => {
    const store = createPostgresStore({ connectionString: db.url }, { poolSize: 4 });
    try {
      await store.migrate();
      const { rows } = await store.pool.query<{ flag: string }>(`SELECT current_setting('hodei.live_rows_by_statement', true) AS flag`);
      expect(rows).toEqual([{ flag: 'on' }]);
      for (const seed of [1, 2, 3]) await exercise(store, pool, seed, false);
      for (const seed of [4, 5, 6]) await exercise(store, pool, seed, true);
    } finally {
      await store.close();
    }
  });

  it('follow every store call exactly on a pool passed in (statements and trigger both run)', async () => {
    const store = createPostgresStore({ pool });
    try {
      await exercise(store, pool, 7, false);
      await exercise(store, pool, 8, true);
    } finally {
      await store.close();
    }
  });

  it('follow the writes of another program, or of the previous release, through the trigger', async () => {
    // A session of the previous release sets only migration 7's flag.
    const old = new pg.Client({ connectionString: db.url, options: '-c hodei.notify_by_statement=on' });
    await old.connect();
    try {
      const at = new Date(T0);
      await old.query(
        `INSERT INTO jobs (id, state, spec, priority, attempt, epoch, created_at) VALUES
         ('job_old_1', 'QUEUED', '{"name":"a","labels":{"os":"linux"}}', 5, 1, 0, $1), ('job_old_2', 'QUEUED', '{"name":"b"}', 5, 1, 0, $1),
         ('job_old_3', 'RUNNING', '{"name":"c"}', 0, 1, 1, $1)`,
        [at],
      );
      expect(await disagreements(pool)).toEqual([]);
      // The previous release's claim, start, finish and re-queue.
      await old.query(
        `UPDATE jobs SET state = 'ASSIGNED', worker_id = 'w_old', epoch = epoch + 1, assigned_at = $1
         WHERE id IN (SELECT n.id FROM hodei_next_queued_jobs($1, '{"os":"linux"}', 1) AS n(id))`,
        [at],
      );
      expect((await old.query(`SELECT state FROM jobs WHERE id = 'job_old_1'`)).rows).toEqual([{ state: 'ASSIGNED' }]);
      expect(await disagreements(pool)).toEqual([]);
      await old.query(`UPDATE jobs SET state = 'RUNNING', started_at = $1 WHERE id = 'job_old_1'`, [at]);
      await old.query(`UPDATE jobs SET state = 'SUCCEEDED', completed_at = $1 WHERE id = 'job_old_3'`, [at]);
      await old.query(`UPDATE jobs SET state = 'QUEUED', worker_id = NULL, assigned_at = NULL, not_before = $1 WHERE id = 'job_old_1'`, [at]);
      await old.query(`UPDATE jobs SET state = 'CANCELLED' WHERE id = 'job_old_2'`);
      expect(await disagreements(pool)).toEqual([]);
      await old.query(`DELETE FROM jobs WHERE id LIKE 'job_old_%'`);
    } finally {
      await old.end();
    }
  });

  it('a cancel does not wait for a claim holding the job\'s queue row, and readers skip the row it leaves', async () => {
    const store = createPostgresStore({ pool });
    const job = await queuedAtTheHead(store, 1_000_000);
    // A claim in progress: it holds the queue row (and would next update the job, which the cancel locks).
    const claim = await pool.connect();
    try {
      await claim.query('BEGIN');
      await claim.query('SELECT 1 FROM job_queue WHERE id = $1 FOR UPDATE', [job.id]);
      const cancelled = await store.updateJob(job.id, { states: ['QUEUED'] }, { state: 'CANCELLED', completedAt: T0 });
      expect(cancelled).toMatchObject({ state: 'CANCELLED' });
      await claim.query('ROLLBACK');
    } finally {
      claim.release();
    }
    // The queue row stayed (the cancel skipped it): nothing reads it as a queued job, and a claim drops it.
    expect(await disagreements(pool)).toEqual([`stale queue row: ${job.id}`]);
    expect((await store.queuedJobs(10)).map((queued) => queued.id)).not.toContain(job.id);
    expect((await store.listJobs({ states: ['QUEUED'] })).map((queued) => queued.id)).not.toContain(job.id);
    expect(await store.claimJobs({ workerId: 'w_claim', labels: {}, limit: 1, now: T0 })).not.toContainEqual(expect.objectContaining({ id: job.id }));
    expect(await store.getJob(job.id)).toMatchObject({ state: 'CANCELLED' });
    expect(await disagreements(pool)).toEqual([]);
    await store.close();
  });

  it('a job re-queued while a row of its earlier stint is left behind gets a row of its own, which a sweep keeps', async () => {
    // The review's case: a row left behind (here by a writer that keeps no live rows), the job re-queued with a
    // backoff, then the end of a retention sweep. The job must stay claimable, and not before its backoff ends.
    // The store's own pool: its statements alone move the live rows (on a pool passed in, the trigger would too).
    const store = createPostgresStore({ connectionString: db.url }, { poolSize: 2 });
    const job = await queuedAtTheHead(store, 2_000_000);
    await withoutLiveRows(pool, `UPDATE jobs SET state = 'ASSIGNED', worker_id = 'w_gone', epoch = 1, assigned_at = $2 WHERE id = $1`, [job.id, new Date(T0)]);
    await pool.query(`INSERT INTO job_claims (worker_id, assigned_at, id) VALUES ('w_gone', $2, $1)`, [job.id, new Date(T0)]);
    expect(await disagreements(pool)).toEqual([`stale queue row: ${job.id}`]);
    // The stranded sweep's re-queue, with a backoff an hour long.
    const backoffEnd = T0 + 3_600_000;
    expect(await store.updateJob(job.id, { states: ['ASSIGNED'], epoch: 1 }, { state: 'QUEUED', workerId: undefined, assignedAt: undefined, notBefore: backoffEnd })).toBeDefined();
    expect(missing(await disagreements(pool))).toEqual([]);
    await store.deleteFinishedJobs(T0 - 1, 1);
    expect(await disagreements(pool)).toEqual([]);
    expect((await store.queuedJobs(1_000)).filter((queued) => queued.id === job.id)).toHaveLength(1);
    // The row left behind (its not_before unset) does not let a claim take the job before its backoff ends.
    await pool.query(`INSERT INTO job_queue (priority, created_at, insert_seq, id, not_before, labels) SELECT priority, created_at, insert_seq, id, NULL, '{}' FROM jobs WHERE id = $1`, [job.id]);
    expect((await store.claimJobs({ workerId: 'w_early', labels: {}, limit: 5, now: T0 + 1 })).map((claimed) => claimed.id)).not.toContain(job.id);
    expect(missing(await disagreements(pool))).toEqual([]);
    expect((await store.claimJobs({ workerId: 'w_late', labels: {}, limit: 5, now: backoffEnd })).map((claimed) => claimed.id)).toContain(job.id);
    expect(await disagreements(pool)).toEqual([]);
    await store.close();
  });

  it('a queued job whose backoff changes while a claim holds its queue row keeps a row (the review\'s race)', async () => {
    const lockWaits = async () =>
      (await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`)).rows[0]!.n;
    const waitingFor = async (count: number) => {
      for (let tries = 0; tries < 400 && (await lockWaits()) < count; tries++) await new Promise((resolve) => setTimeout(resolve, 25));
      expect(await lockWaits()).toBeGreaterThanOrEqual(count);
    };
    // Through the store's own pool (its statements alone move the live rows), then a pool passed in (the trigger too).
    for (const [store, priority] of [
      [createPostgresStore({ connectionString: db.url }, { poolSize: 4 }), 3_000_001],
      [createPostgresStore({ pool }), 3_000_000],
    ] as const) {
      const job = await queuedAtTheHead(store, priority);
      // Another session holds the job's row: the backoff update waits for it, then a claim takes the job's queue
      // row and waits for the job too. When the session lets go, the update runs while the claim holds the row.
      const holder = await lockJob(db.url, 'public', job.id);
      const backoffEnd = T0 + 3_600_000;
      const postponed = store.updateJob(job.id, { states: ['QUEUED'] }, { notBefore: backoffEnd });
      await waitingFor(1);
      const claim = store.claimJobs({ workerId: `w_racing_${priority}`, labels: {}, limit: 1, now: T0 + 1 });
      await waitingFor(2);
      await holder.release();
      expect(await postponed).toMatchObject({ state: 'QUEUED', notBefore: backoffEnd });
      expect((await claim).map((claimed) => claimed.id)).not.toContain(job.id);
      expect(missing(await disagreements(pool))).toEqual([]);
      expect((await store.queuedJobs(1_000)).map((queued) => queued.id)).toContain(job.id);
      expect((await store.claimJobs({ workerId: `w_after_${priority}`, labels: {}, limit: 1, now: backoffEnd })).map((claimed) => claimed.id)).toEqual([job.id]);
      await store.close();
    }
  });

  it('the end of a retention sweep deletes the live rows their jobs outlived', async () => {
    const store = createPostgresStore({ pool });
    const queued = makeTestJob();
    const running = makeTestJob({ state: 'RUNNING', workerId: 'w_1', assignedAt: T0, epoch: 1 });
    await store.insertJob(queued);
    await store.insertJob(running);
    await withoutLiveRows(pool, `UPDATE jobs SET state = 'FAILED' WHERE id = ANY($1)`, [[queued.id, running.id]]);
    expect(await disagreements(pool)).toEqual([`stale claim row: ${running.id}`, `stale queue row: ${queued.id}`]);
    expect(await store.deleteFinishedJobs(T0 - 1, 10)).toBe(0);
    expect(await disagreements(pool)).toEqual([]);
    await store.close();
  });
});

describe('migration 8 on a database with live jobs', () => {
  const testPool = useTestPool(2);
  let pool: pg.Pool;
  beforeAll(() => {
    ({ pool } = testPool());
  });

  it('builds the live rows of the jobs it finds, and the store then claims and lists them', async () => {
    await migrateWith(pool, 'public', MIGRATIONS.filter((migration) => migration.version <= 7));
    const at = (offset: number) => new Date(T0 + offset);
    await pool.query(
      `INSERT INTO jobs (id, state, spec, priority, attempt, epoch, worker_id, created_at, assigned_at, not_before) VALUES
       ('job_low', 'QUEUED', '{"name":"low"}', 0, 1, 0, NULL, $1, NULL, NULL),
       ('job_high', 'QUEUED', '{"name":"high","labels":{"gpu":"yes"}}', 9, 1, 0, NULL, $2, NULL, NULL),
       ('job_later', 'QUEUED', '{"name":"later"}', 0, 2, 1, NULL, $1, NULL, $3),
       ('job_assigned', 'ASSIGNED', '{"name":"a"}', 0, 1, 1, 'w_1', $1, $2, NULL),
       ('job_running', 'RUNNING', '{"name":"r"}', 0, 1, 1, 'w_1', $1, $2, NULL),
       ('job_done', 'SUCCEEDED', '{"name":"d"}', 0, 1, 1, 'w_1', $1, $2, NULL)`,
      [at(0), at(1), at(1_000_000)],
    );
    const store = createPostgresStore({ pool });
    try {
      expect((await store.migrate()).applied).toEqual([8]);
      expect(await disagreements(pool)).toEqual([]);
      expect((await store.queuedJobs(10)).map((job) => job.id)).toEqual(['job_high', 'job_low', 'job_later']);
      expect((await store.listJobs({ states: ['ASSIGNED', 'RUNNING'] })).map((job) => job.id).sort()).toEqual(['job_assigned', 'job_running']);
      const claimed = await store.claimJobs({ workerId: 'w_2', labels: {}, limit: 5, now: T0 + 10 });
      expect(claimed.map((job) => job.id)).toEqual(['job_low']);
      expect((await store.claimJobs({ workerId: 'w_3', labels: { gpu: 'yes' }, limit: 5, now: T0 + 10 })).map((job) => job.id)).toEqual(['job_high']);
      expect(await disagreements(pool)).toEqual([]);
    } finally {
      await store.close();
    }
  });
});
