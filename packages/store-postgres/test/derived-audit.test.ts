import type { AuditEvent } from '@hodei/core';
import { makeTestJob } from '@hodei/core/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIGRATIONS, createPostgresStore, type PostgresStore } from '../src';
import { migrateWith } from '../src/migrate';
import { createTestDatabase, type TestDatabase } from './helpers';

const T0 = 1_700_000_000_000;
const event = (eventType: string, correlationId: string, occurredAt: number, details?: Record<string, unknown>): AuditEvent => ({
  eventType,
  correlationId,
  occurredAt,
  ...(details ? { details } : {}),
});
const seedAudit = (jobId: string) => `SELECT event_type, occurred_at FROM audit_logs WHERE correlation_id = '${jobId}' ORDER BY occurred_at ASC;`;

describe('lifecycle audit events derived from the job row (migration 6)', () => {
  let db: TestDatabase;
  let store: PostgresStore;

  beforeAll(async () => {
    db = await createTestDatabase();
    store = createPostgresStore({ connectionString: db.url }, { poolSize: 4 });
  });

  afterAll(async () => {
    await store?.close();
    await db?.drop();
  });

  async function written(jobId: string): Promise<string[]> {
    const { rows } = await store.pool.query('SELECT event_type FROM audit_log_rows WHERE correlation_id = $1 ORDER BY id', [jobId]);
    return rows.map((row) => row.event_type as string);
  }

  /** A job queued, claimed, started and finished as the engine does it; returns the events it was given. */
  async function run(name: string): Promise<{ id: string; events: AuditEvent[] }> {
    const job = makeTestJob({ spec: { ...makeTestJob().spec, name, maxAttempts: 2 }, createdAt: T0 });
    const events = [event('job.queued', job.id, T0, { name })];
    await store.insertJob(job, events[0]);
    expect(await store.claimJobs({ workerId: 'w_1', labels: {}, limit: 1, now: T0 + 1 })).toHaveLength(1);
    events.push(event('job.assigned', job.id, T0 + 1, { workerId: 'w_1', epoch: 1, attempt: 1 }));
    const ended = [event('job.started', job.id, T0 + 2, { workerId: 'w_1', epoch: 1 }), event('job.finished', job.id, T0 + 5, { state: 'SUCCEEDED', exitCode: 0 })];
    const patch = { state: 'SUCCEEDED' as const, startedAt: T0 + 2, completedAt: T0 + 5, exitCode: 0, durationMs: 3 };
    expect(await store.updateJob(job.id, { states: ['ASSIGNED'], epoch: 1 }, patch, ended)).toBeDefined();
    events.push(...ended);
    return { id: job.id, events };
  }

  it('writes no audit row for the lifecycle of a job that ran once; the seed query and listAudit still read all four', async () => {
    const { id, events } = await run('derived');
    expect(await written(id)).toEqual([]);
    const { rows } = await store.pool.query('SELECT derived_events FROM jobs WHERE id = $1', [id]);
    expect(rows[0].derived_events).toBe(15);
    const seed = await store.pool.query(seedAudit(id));
    expect(seed.rows.map((row) => [row.event_type, (row.occurred_at as Date).getTime()])).toEqual(events.map((e) => [e.eventType, e.occurredAt]));
    expect(await store.listAudit(id)).toEqual(events);
  });

  it('writes a lifecycle event given again as a row, after sealing the derived ones, so the history keeps both in order', async () => {
    const { id, events } = await run('again');
    expect(await store.updateJob(id, { states: ['SUCCEEDED'] }, {}, events[2])).toBeDefined();
    expect(await store.listAudit(id)).toEqual([...events.slice(0, 3), events[2], events[3]]);
  });

  it('writes, as given, the events of updates the row does not give back, batched with updates whose events it does', async () => {
    // One statement: a finish whose events the row gives back, one whose job.finished says another exit code
    // than the row gets (so not derivable: written as a row, with its own details), and one with an event that
    // is never derived (sent as it is). A schema of its own: the claims take the whole queue.
    const store = createPostgresStore({ connectionString: db.url }, { schema: 'batched_elision', poolSize: 2 });
    const written = async (jobId: string) =>
      (await store.pool.query('SELECT event_type FROM batched_elision.audit_log_rows WHERE correlation_id = $1 ORDER BY id', [jobId])).rows.map((row) => row.event_type as string);
    const jobs = await Promise.all(
      ['batch-derived', 'batch-other-exit', 'batch-plain'].map(async (name) => {
        const job = makeTestJob({ spec: { ...makeTestJob().spec, name }, createdAt: T0 });
        await store.insertJob(job, event('job.queued', job.id, T0, { name }));
        return job;
      }),
    );
    expect((await store.claimJobs({ workerId: 'w_2', labels: {}, limit: 3, now: T0 + 1 })).map((job) => job.id)).toEqual(jobs.map((job) => job.id));
    const patch = { state: 'FAILED' as const, startedAt: T0 + 2, completedAt: T0 + 4, exitCode: 2, durationMs: 2 };
    const given = [
      [event('job.started', jobs[0]!.id, T0 + 2, { workerId: 'w_2', epoch: 1 }), event('job.finished', jobs[0]!.id, T0 + 4, { state: 'FAILED', exitCode: 2 })],
      [event('job.started', jobs[1]!.id, T0 + 2, { workerId: 'w_2', epoch: 1 }), event('job.finished', jobs[1]!.id, T0 + 4, { state: 'FAILED', exitCode: 9 })],
      [event('job.failed', jobs[2]!.id, T0 + 4, { reason: 'exit code 2', lines: ['a', '"b"'] })],
    ];
    const updated = await Promise.all(jobs.map((job, index) => store.updateJob(job.id, { states: ['ASSIGNED'], epoch: 1 }, patch, given[index])));
    expect(updated.map((job) => job?.state)).toEqual(['FAILED', 'FAILED', 'FAILED']);
    expect(await written(jobs[0]!.id)).toEqual([]);
    expect(await written(jobs[1]!.id)).toEqual(['job.queued', 'job.assigned', 'job.started', 'job.finished']);
    expect(await written(jobs[2]!.id)).toEqual(['job.queued', 'job.assigned', 'job.failed']);
    const assignedEvent = (id: string) => event('job.assigned', id, T0 + 1, { workerId: 'w_2', epoch: 1, attempt: 1 });
    jobs.forEach((job, index) => (given[index] = [event('job.queued', job.id, T0, { name: job.spec.name }), assignedEvent(job.id), ...given[index]!]));
    for (const [index, job] of jobs.entries()) expect(await store.listAudit(job.id)).toEqual(given[index]);
    await store.close();
  });

  it('writes the derived events as rows before a re-queue clears what they derive from, and before retention deletes the job', async () => {
    const job = makeTestJob({ createdAt: T0 });
    const events = [event('job.queued', job.id, T0, { name: job.spec.name })];
    await store.insertJob(job, events[0]);
    await store.claimJobs({ workerId: 'w_2', labels: {}, limit: 10, now: T0 + 1 });
    events.push(event('job.assigned', job.id, T0 + 1, { workerId: 'w_2', epoch: 1, attempt: 1 }));
    expect(await written(job.id)).toEqual([]);
    // A change without an event that rewrites a derived event's columns (here: the worker) seals them first.
    expect(await store.updateJob(job.id, { states: ['ASSIGNED'] }, { workerId: 'w_3', attempt: 1 })).toBeDefined();
    expect(await written(job.id)).toEqual(['job.queued', 'job.assigned']);
    expect(await store.listAudit(job.id)).toEqual(events);

    const { id, events: ran } = await run('sealed');
    expect(await written(id)).toEqual([]);
    await store.pool.query('UPDATE jobs SET completed_at = $2 WHERE id = $1', [id, new Date(T0 - 1)]);
    // The manual change above moved completed_at: job.finished was sealed with its old time.
    expect(await written(id)).toEqual(['job.queued', 'job.assigned', 'job.started', 'job.finished']);
    expect(await store.listAudit(id)).toEqual(ran);

    const { id: swept, events: sweptEvents } = await run('swept');
    expect(await store.deleteFinishedJobs(T0 + 100, 100)).toBeGreaterThanOrEqual(2);
    expect(await store.getJob(swept)).toBeUndefined();
    expect(await written(swept)).toEqual(['job.queued', 'job.assigned', 'job.started', 'job.finished']);
    expect(await store.listAudit(swept)).toEqual(sweptEvents);
    expect(await store.listAudit(id)).toEqual(ran);
  });

  it('takes the writes of a server of the previous release (events inserted into audit_logs) in order, during a rolling upgrade', async () => {
    const jobs = [0, 1].map(() => makeTestJob({ createdAt: T0, spec: { ...makeTestJob().spec, priority: 1_000 } }));
    const queued = jobs.map((job) => event('job.queued', job.id, T0, { name: job.spec.name }));
    for (const [index, job] of jobs.entries()) await store.insertJob(job, queued[index]);
    // The previous release's claim of two jobs: their update, and their events inserted into audit_logs by a
    // CTE the statement does not read (as its claimJobsSql did).
    const claimed = await store.pool.query(
      `WITH picked AS (
         SELECT n.id FROM hodei_next_queued_jobs($2, '{}'::jsonb, 2) AS n(id)
       ), claimed AS (
         UPDATE jobs AS j SET state = 'ASSIGNED', worker_id = $1, epoch = j.epoch + 1, assigned_at = $2, not_before = NULL
         FROM picked WHERE j.id = picked.id
         RETURNING j.id, j.epoch, j.attempt
       ), audited AS (
         INSERT INTO audit_logs (event_type, correlation_id, occurred_at, details)
         SELECT 'job.assigned', c.id, $2, jsonb_build_object('workerId', $1::text, 'epoch', c.epoch, 'attempt', c.attempt) FROM claimed AS c
       )
       SELECT id FROM claimed`,
      ['w_old', new Date(T0)],
    );
    expect(claimed.rows.map((row) => row.id).sort()).toEqual(jobs.map((job) => job.id).sort());
    // Its batched finish: both jobs in one UPDATE, two events each, inserted in array order for the jobs updated.
    const ids = jobs.flatMap((job) => [job.id, job.id]);
    await store.pool.query(
      `WITH updated AS (
         UPDATE jobs AS j SET state = 'SUCCEEDED', started_at = $2, completed_at = $2, exit_code = 0
         FROM unnest($1::text[]) AS u(v_id) WHERE j.id = u.v_id AND j.state = 'ASSIGNED'
         RETURNING j.id
       ), audited AS (
         INSERT INTO audit_logs (event_type, correlation_id, occurred_at, details)
         SELECT a.v_type, a.v_job, $2, a.v_details::jsonb
         FROM unnest($3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS a(v_job, v_type, v_details, v_ord)
         JOIN updated ON updated.id = a.v_job
         ORDER BY a.v_ord
       )
       SELECT id FROM updated`,
      [
        jobs.map((job) => job.id),
        new Date(T0),
        ids,
        ids.map((_, index) => (index % 2 === 0 ? 'job.started' : 'job.finished')),
        ids.map((_, index) => JSON.stringify(index % 2 === 0 ? { workerId: 'w_old', epoch: 1 } : { state: 'SUCCEEDED', exitCode: 0 })),
      ],
    );
    await store.pool.query(`INSERT INTO audit_logs (event_type, correlation_id, occurred_at, details) VALUES ('job.note', $1, $2, NULL)`, [jobs[0]!.id, new Date(T0)]);
    // All in one millisecond: the ids keep the order they were written in, each job's derived job.queued first.
    for (const [index, job] of jobs.entries()) {
      const note = index === 0 ? [event('job.note', job.id, T0)] : [];
      expect(await store.listAudit(job.id)).toEqual([
        queued[index],
        event('job.assigned', job.id, T0, { workerId: 'w_old', epoch: 1, attempt: 1 }),
        event('job.started', job.id, T0, { workerId: 'w_old', epoch: 1 }),
        event('job.finished', job.id, T0, { state: 'SUCCEEDED', exitCode: 0 }),
        ...note,
      ]);
      expect(await written(job.id)).toEqual(['job.queued', 'job.assigned', 'job.started', 'job.finished', ...note.map((e) => e.eventType)]);
    }
  });

  it("reads one job's events through the hash index and the jobs primary key, not a scan", async () => {
    await store.pool.query(`INSERT INTO jobs (id, state, spec, priority, attempt, epoch, created_at, derived_events)
      SELECT 'job_bulk_' || n, 'QUEUED', '{"name":"bulk"}', 0, 1, 0, now(), 1 FROM generate_series(1, 5000) AS n`);
    await store.pool.query(`INSERT INTO audit_log_rows (event_type, correlation_id, occurred_at)
      SELECT 'worker.noted', 'w_bulk_' || n, now() FROM generate_series(1, 5000) AS n`);
    await store.pool.query('ANALYZE jobs; ANALYZE audit_log_rows');
    const { rows } = await store.pool.query(`EXPLAIN (FORMAT JSON) ${seedAudit('job_bulk_17')}`);
    const plan = JSON.stringify(rows[0]['QUERY PLAN']);
    expect(plan).not.toContain('Seq Scan');
    expect(plan).toContain('audit_log_rows_correlation_hash_idx');
    expect(plan).toContain('jobs_pkey');
    const seed = await store.pool.query(seedAudit('job_bulk_17'));
    expect(seed.rows.map((row) => row.event_type)).toEqual(['job.queued']);
  });
});

describe('migration 6 on a database with jobs and audit rows', () => {
  let db: TestDatabase;
  let pool: pg.Pool;

  beforeAll(async () => {
    db = await createTestDatabase();
    pool = new pg.Pool({ connectionString: db.url, max: 2 });
  });

  afterAll(async () => {
    await pool?.end();
    await db?.drop();
  });

  it('keeps every audit event as it was, and derives the later events of an old job', async () => {
    await migrateWith(pool, 'public', MIGRATIONS.filter((migration) => migration.version <= 5));
    const at = (offset: number) => new Date(T0 + offset);
    await pool.query(
      `INSERT INTO jobs (id, state, spec, priority, attempt, epoch, worker_id, created_at, assigned_at, started_at, completed_at, exit_code)
       VALUES ('job_done', 'SUCCEEDED', '{"name":"done"}', 0, 1, 1, 'w_1', $1, $2, $2, $3, 0),
              ('job_running', 'ASSIGNED', '{"name":"running"}', 0, 1, 1, 'w_1', $1, $2, NULL, NULL, NULL)`,
      [at(0), at(1), at(2)],
    );
    await pool.query(
      `INSERT INTO audit_logs (event_type, correlation_id, occurred_at, details) VALUES
       ('job.queued', 'job_done', $1, '{"name":"done"}'), ('job.queued', 'job_running', $1, '{"name":"running"}'),
       ('job.assigned', 'job_done', $2, '{"workerId":"w_1","epoch":1,"attempt":1}'), ('job.started', 'job_done', $2, '{"workerId":"w_1","epoch":1}'),
       ('job.assigned', 'job_running', $2, '{"workerId":"w_1","epoch":1,"attempt":1}'),
       ('job.finished', 'job_done', $3, '{"state":"SUCCEEDED","exitCode":0}'), ('worker.registered', 'w_1', $1, '{}')`,
      [at(0), at(1), at(2)],
    );
    const audit = async (id: string) =>
      (await pool.query('SELECT event_type, correlation_id, occurred_at, details FROM audit_logs WHERE correlation_id = $1 ORDER BY occurred_at, id', [id])).rows;
    const before = { done: await audit('job_done'), running: await audit('job_running'), worker: await audit('w_1') };
    expect(before.done).toHaveLength(4);

    const store = createPostgresStore({ pool });
    try {
      expect((await store.migrate()).applied).toEqual(MIGRATIONS.filter((migration) => migration.version > 5).map((migration) => migration.version));
      expect(await audit('job_done')).toEqual(before.done);
      expect(await audit('job_running')).toEqual(before.running);
      expect(await audit('w_1')).toEqual(before.worker);
      const listed = (rows: typeof before.done) =>
        rows.map((row) => ({ eventType: row.event_type, correlationId: row.correlation_id, occurredAt: row.occurred_at.getTime(), details: row.details }));
      expect(await store.listAudit('job_done')).toEqual(listed(before.done));
      // The running job's next events are derived from its row and read after its old rows.
      const ended = [event('job.started', 'job_running', T0 + 1, { workerId: 'w_1', epoch: 1 }), event('job.finished', 'job_running', T0 + 3, { state: 'SUCCEEDED', exitCode: 0 })];
      const patch = { state: 'SUCCEEDED' as const, startedAt: T0 + 1, completedAt: T0 + 3, exitCode: 0 };
      expect(await store.updateJob('job_running', { states: ['ASSIGNED'], epoch: 1 }, patch, ended)).toBeDefined();
      expect(await store.listAudit('job_running')).toEqual([...listed(before.running), ...ended]);
      const { rows } = await pool.query(`SELECT count(*)::int AS n FROM audit_log_rows WHERE correlation_id = 'job_running'`);
      expect(rows[0].n).toBe(2);
    } finally {
      await store.close();
    }
  });
});
