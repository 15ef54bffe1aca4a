import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresStore, type PostgresStore } from '../src';
import { createTestDatabase, type TestDatabase } from './helpers';

// The operators' queries from the seed's runbook, verbatim: they must keep working on our schema.
const WORKERS_BY_HEARTBEAT = `SELECT id, state, last_heartbeat 
FROM workers 
ORDER BY last_heartbeat DESC LIMIT 5;`;
const WORKERS_BY_CREATION = `
SELECT id, state, created_at, last_heartbeat 
FROM workers 
ORDER BY created_at DESC LIMIT 3;`;
const JOBS_BY_CREATION = `
SELECT id, state, started_at, completed_at, error_message
FROM jobs
ORDER BY created_at DESC LIMIT 3;`;
const auditOf = (jobId: string) => `
SELECT event_type, occurred_at
FROM audit_logs
WHERE correlation_id = '${jobId}'
ORDER BY occurred_at ASC;`;

describe('the seed runbook queries', () => {
  let database: TestDatabase;
  let store: PostgresStore;
  let client: pg.Client;
  const t0 = Date.UTC(2026, 0, 2, 3, 4, 5, 678);

  beforeAll(async () => {
    database = await createTestDatabase();
    store = createPostgresStore({ connectionString: database.url });
    // What the engine writes for one job run on one worker.
    await store.insertWorker({ id: 'w_1', provider: 'process', state: 'CREATING', capacity: 1, runningJobIds: [], labels: {}, createdAt: t0 });
    await store.updateWorker('w_1', { states: ['CREATING', 'CONNECTING'] }, { state: 'READY', lastHeartbeat: t0 + 1_000, idleSince: t0 + 1_000 });
    await store.insertWorker({ id: 'w_2', provider: 'process', state: 'CREATING', capacity: 1, runningJobIds: [], labels: {}, createdAt: t0 + 5 });
    await store.insertJob({
      id: 'job_seed',
      spec: { name: 'seed', command: 'false', args: [], env: {}, secretEnv: [], timeoutMs: 1_000, labels: {}, maxAttempts: 1, priority: 0 },
      state: 'QUEUED',
      attempt: 1,
      epoch: 0,
      createdAt: t0 + 10,
    });
    await store.appendAudit({ eventType: 'job.queued', correlationId: 'job_seed', occurredAt: t0 + 10, details: { name: 'seed' } });
    await store.updateJob('job_seed', { states: ['QUEUED'], epoch: 0 }, { state: 'ASSIGNED', workerId: 'w_1', epoch: 1, assignedAt: t0 + 20 });
    await store.appendAudit({ eventType: 'job.assigned', correlationId: 'job_seed', occurredAt: t0 + 20 });
    await store.updateJob('job_seed', { states: ['ASSIGNED'], epoch: 1 }, { state: 'RUNNING', startedAt: t0 + 30 });
    await store.appendAudit({ eventType: 'job.started', correlationId: 'job_seed', occurredAt: t0 + 30 });
    await store.updateJob('job_seed', { states: ['RUNNING'], epoch: 1 }, {
      state: 'FAILED',
      completedAt: t0 + 40,
      exitCode: 1,
      errorMessage: 'exit code 1',
      failureReason: 'EXIT_CODE',
      durationMs: 10,
    });
    await store.appendAudit({ eventType: 'job.finished', correlationId: 'job_seed', occurredAt: t0 + 40 });
    client = new pg.Client({ connectionString: database.url });
    await client.connect();
  });

  afterAll(async () => {
    await client?.end();
    await store?.close();
    await database?.drop();
  });

  it('lists workers by last heartbeat', async () => {
    const result = await client.query(WORKERS_BY_HEARTBEAT);
    expect(result.fields.map((field) => field.name)).toEqual(['id', 'state', 'last_heartbeat']);
    // DESC puts NULLs (a worker that never sent one) first, as in any PostgreSQL.
    expect(result.rows).toEqual([
      { id: 'w_2', state: 'CREATING', last_heartbeat: null },
      { id: 'w_1', state: 'READY', last_heartbeat: new Date(t0 + 1_000) },
    ]);
  });

  it('lists workers by creation', async () => {
    const result = await client.query(WORKERS_BY_CREATION);
    expect(result.fields.map((field) => field.name)).toEqual(['id', 'state', 'created_at', 'last_heartbeat']);
    expect(result.rows.map((row) => [row.id, row.created_at])).toEqual([
      ['w_2', new Date(t0 + 5)],
      ['w_1', new Date(t0)],
    ]);
  });

  it('lists jobs with their outcome', async () => {
    const result = await client.query(JOBS_BY_CREATION);
    expect(result.fields.map((field) => field.name)).toEqual(['id', 'state', 'started_at', 'completed_at', 'error_message']);
    expect(result.rows).toEqual([
      { id: 'job_seed', state: 'FAILED', started_at: new Date(t0 + 30), completed_at: new Date(t0 + 40), error_message: 'exit code 1' },
    ]);
  });

  it("follows a job's audit trail", async () => {
    const result = await client.query(auditOf('job_seed'));
    expect(result.fields.map((field) => field.name)).toEqual(['event_type', 'occurred_at']);
    expect(result.rows).toEqual([
      { event_type: 'job.queued', occurred_at: new Date(t0 + 10) },
      { event_type: 'job.assigned', occurred_at: new Date(t0 + 20) },
      { event_type: 'job.started', occurred_at: new Date(t0 + 30) },
      { event_type: 'job.finished', occurred_at: new Date(t0 + 40) },
    ]);
  });

  it('stores timestamps as timestamptz', async () => {
    const result = await client.query<{ column: string; data_type: string }>(
      `SELECT table_name || '.' || column_name AS column, data_type FROM information_schema.columns
       WHERE table_schema = 'public' AND (column_name LIKE '%\\_at' OR column_name IN ('last_heartbeat', 'idle_since', 'ts'))
       ORDER BY 1`,
    );
    expect(result.rows.map((row) => row.column)).toEqual(
      expect.arrayContaining(['jobs.created_at', 'jobs.started_at', 'jobs.completed_at', 'workers.last_heartbeat', 'audit_logs.occurred_at', 'job_logs.ts']),
    );
    expect(result.rows.filter((row) => row.data_type !== 'timestamp with time zone')).toEqual([]);
  });
});
