import {
  JobController,
  resolveEngineConfig,
  silentLogger,
  systemClock,
  type CreateWorkerRequest,
  type Job,
  type Provider,
  type WorkerChannel,
} from '@hodei/core';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresStore, type PostgresStore } from '../src';
import { createTestDatabase, type TestDatabase, until } from './helpers';

/** A provider whose "workers" live in this process and talk to the controller directly. */
function inProcessProvider(controller: () => JobController): Provider {
  return {
    specificationVersion: 'v1',
    name: 'inproc',
    capabilities: { maxWorkers: 2, workerCapacity: 1, labels: {} },
    async createWorker({ workerId, otp }: CreateWorkerRequest) {
      const channel: WorkerChannel = {
        runJob(job: Job) {
          void (async () => {
            await controller().jobStarted(workerId, job.id, job.epoch);
            await controller().appendLogs(workerId, job.id, job.epoch, [
              { timestamp: Date.now(), stream: 'stdout', text: `hello from ${job.spec.name}` },
              { timestamp: Date.now(), stream: 'stderr', text: 'done' },
            ]);
            await controller().jobFinished(workerId, job.id, job.epoch, {
              outcome: 'EXITED',
              exitCode: 0,
              signal: '',
              durationMs: 3,
              errorMessage: '',
            });
          })();
        },
        cancelJob() {},
        drain() {},
        close() {},
      };
      setImmediate(() => void controller().registerWorker({ workerId, otp, capacity: 1 }, channel).catch(() => undefined));
    },
    async destroyWorker() {},
    onWorkerExit: () => () => undefined,
    async close() {},
  };
}

describe('the engine on PostgreSQL', () => {
  let database: TestDatabase;
  let store: PostgresStore;
  let controller: JobController;

  beforeAll(async () => {
    database = await createTestDatabase();
    store = createPostgresStore({ connectionString: database.url }, { poolSize: 4 });
    controller = new JobController({
      store,
      providers: [inProcessProvider(() => controller)],
      clock: systemClock,
      logger: silentLogger,
      config: resolveEngineConfig({}),
      serverAddress: () => 'in-process',
    });
    await controller.start();
  });

  afterAll(async () => {
    await controller?.stop();
    await store?.close();
    await database?.drop();
  });

  it('runs queued jobs to completion through provisioning, one-time tokens, claims, logs and audit', async () => {
    const jobs = await Promise.all(['one', 'two', 'three'].map((name) => controller.queue({ name, command: 'true' })));
    const done = await until(async () => {
      const current = await Promise.all(jobs.map((job) => store.getJob(job.id)));
      return current.every((job) => job?.state === 'SUCCEEDED') ? (current as Job[]) : undefined;
    });
    for (const job of done) {
      expect(job).toMatchObject({ state: 'SUCCEEDED', exitCode: 0, epoch: 1, attempt: 1, durationMs: 3 });
      expect(job.startedAt).toBeGreaterThanOrEqual(job.assignedAt!);
      expect(job.completedAt).toBeGreaterThanOrEqual(job.startedAt!);
      expect((await store.readLogs(job.id, 1, 10)).map((line) => [line.seq, line.stream, line.text])).toEqual([
        [1, 'stdout', `hello from ${job.spec.name}`],
        [2, 'stderr', 'done'],
      ]);
      expect((await store.listAudit(job.id)).map((event) => event.eventType)).toEqual([
        'job.queued',
        'job.assigned',
        'job.started',
        'job.finished',
      ]);
    }
    const workers = await store.listWorkers();
    expect(workers.length).toBeGreaterThan(0);
    expect(workers.every((worker) => worker.sessionTokenHash && /^[0-9a-f]{64}$|^[A-Za-z0-9_-]{43}$/.test(worker.sessionTokenHash))).toBe(true);

    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      // Every one-time token was consumed, and none was stored in plain text.
      expect((await client.query('SELECT count(*)::int AS n FROM worker_tokens')).rows[0].n).toBe(0);
      const audit = await client.query(
        `SELECT event_type, occurred_at FROM audit_logs WHERE correlation_id = '${jobs[0]!.id}' ORDER BY occurred_at ASC;`,
      );
      expect(audit.rows.map((row) => row.event_type)).toEqual(['job.queued', 'job.assigned', 'job.started', 'job.finished']);
      // The engine gives each lifecycle event the time it writes with the change: all four are derived from the
      // job's row (migration 6), none written as an audit row.
      const written = await client.query('SELECT count(*)::int AS n FROM audit_log_rows WHERE correlation_id = ANY($1)', [jobs.map((job) => job.id)]);
      expect(written.rows[0].n).toBe(0);
    } finally {
      await client.end();
    }
  });
});
