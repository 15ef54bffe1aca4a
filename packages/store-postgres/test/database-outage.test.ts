import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPlatform, isTerminalJobState, type Job, type Logger, type Platform } from '@hodei/core';
import { ProcessProvider } from '@hodei/provider-process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresStore, type PostgresStore } from '../src';
import { createTestDatabase, until, type TestDatabase } from './helpers';
import { TcpProxy } from './tcp-proxy';

function recordingLogger(): Logger & { lines: { level: string; message: string }[] } {
  const lines: { level: string; message: string }[] = [];
  const record = (level: string) => (_: Record<string, unknown>, message: string) => void lines.push({ level, message });
  return { lines, debug: () => undefined, info: record('info'), warn: record('warn'), error: record('error') };
}

/** A fresh database behind a TCP proxy the test can cut; `url` reaches the database through the proxy. */
async function proxiedDatabase(): Promise<{ db: TestDatabase; proxy: TcpProxy; url: string }> {
  const db = await createTestDatabase();
  const target = new URL(db.url);
  const proxy = new TcpProxy({ host: target.hostname, port: Number(target.port) });
  const proxied = new URL(db.url);
  proxied.hostname = '127.0.0.1';
  proxied.port = String(await proxy.start());
  return { db, proxy, url: proxied.toString() };
}

const LINES = 30;
const expectedLines = Array.from({ length: LINES }, (_, index) => `line-${index + 1}`);

describe('PostgreSQL unavailable for a few seconds mid-run', () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  let store: PostgresStore;
  let direct: PostgresStore;
  let provider: ProcessProvider;
  let platform: Platform;
  let dir: string;
  const logger = recordingLogger();

  beforeAll(async () => {
    let url: string;
    ({ db, proxy, url } = await proxiedDatabase());
    dir = mkdtempSync(join(tmpdir(), 'hodei-outage-'));
    store = createPostgresStore({ connectionString: url }, { poolSize: 5, listenHealthCheckMs: 300 });
    direct = createPostgresStore({ connectionString: db.url }, { poolSize: 2 });
    await store.migrate();
    provider = new ProcessProvider({ maxWorkers: 3, stopGraceMs: 2_000 });
    platform = await createPlatform({ store, providers: [provider], heartbeatTimeoutMs: 20_000, logger });
  });

  afterAll(async () => {
    await proxy?.restore();
    await platform?.close();
    expect(provider?.pids ?? []).toEqual([]);
    await store?.close();
    await direct?.close();
    await proxy?.close();
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('retries store calls, logs it, and every job reaches its right terminal state exactly once', async () => {
    // Each run appends one line to a file named after the job: executions, not states, are counted.
    const mark = 'echo run >> "$DIR/$HODEI_JOB_ID"';
    const printing = `${mark}; for i in $(seq 1 ${LINES}); do echo line-$i; sleep 0.1; done`;
    const jobs: { job: Job; expect: Partial<Job> }[] = [];
    for (let index = 0; index < 3; index += 1) {
      jobs.push({ job: await platform.client.queue({ name: `print-${index}`, command: printing, env: { DIR: dir } }), expect: { state: 'SUCCEEDED', exitCode: 0 } });
    }
    jobs.push({
      job: await platform.client.queue({ name: 'exit-3', command: `${mark}; sleep 2; exit 3`, env: { DIR: dir } }),
      expect: { state: 'FAILED', exitCode: 3, failureReason: 'EXIT_CODE' },
    });
    jobs.push({ job: await platform.client.queue({ name: 'queued', command: `${mark}; echo later`, env: { DIR: dir } }), expect: { state: 'SUCCEEDED' } });
    const listensBefore = await until(async () => (store.listenerConnections > 0 ? store.listenerConnections : undefined), 10_000, 'the LISTEN connection');

    // Mid-run: the three printing jobs are running.
    await until(async () => {
      const states = await Promise.all(jobs.slice(0, 3).map(async ({ job }) => (await direct.getJob(job.id))?.state));
      return states.every((state) => state === 'RUNNING') ? true : undefined;
    }, 30_000, 'three running jobs');
    await until(async () => ((await direct.readLogs(jobs[0]!.job.id, 3, 1)).length > 0 ? true : undefined), 10_000, 'some output');

    await proxy.cut();
    // Queued through the platform while the database is unreachable: the call waits for it, then lands.
    const duringOutage = platform.client.queue({ name: 'during-outage', command: `${mark}; echo late`, env: { DIR: dir } });
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    await proxy.restore();
    jobs.push({ job: await duringOutage, expect: { state: 'SUCCEEDED', exitCode: 0 } });

    const finished = await until(async () => {
      const all = await Promise.all(jobs.map(({ job }) => direct.getJob(job.id)));
      return all.every((job) => job && isTerminalJobState(job.state)) ? (all as Job[]) : undefined;
    }, 60_000, 'every job to finish');
    for (const [index, job] of finished.entries()) expect(job).toMatchObject({ ...jobs[index]!.expect, attempt: 1 });

    // Exactly once: one execution per job, one job.finished/failed record each.
    expect(readdirSync(dir).sort()).toEqual(jobs.map(({ job }) => job.id).sort());
    for (const { job } of jobs) {
      expect(readFileSync(join(dir, job.id), 'utf8')).toBe('run\n');
      const ends = (await direct.listAudit(job.id)).filter((event) => event.eventType === 'job.finished' || event.eventType === 'job.failed');
      expect(ends).toHaveLength(1);
    }

    // A clear log line when the store went away, and one when it came back; no crash (the platform serves).
    expect(logger.lines.some((line) => line.level === 'warn' && /store postgres unavailable .*retrying store calls with backoff/.test(line.message))).toBe(true);
    expect(logger.lines.some((line) => line.level === 'info' && /store postgres is reachable again/.test(line.message))).toBe(true);
    expect(logger.lines.filter((line) => line.level === 'error')).toEqual([]);

    // The LISTEN connection came back (it was re-established after the cut), and the platform still serves.
    await until(async () => (store.listenerConnections > listensBefore ? true : undefined), 20_000, 'the LISTEN connection to reconnect');
    const after = await platform.client.queue({ name: 'after', command: 'echo after' });
    expect((await platform.client.wait(after.id)).state).toBe('SUCCEEDED');

    // Every line of the printing jobs, once and in order.
    for (const { job } of jobs.slice(0, 3)) {
      const texts = (await direct.readLogs(job.id, 1, 1_000)).filter((line) => line.stream === 'stdout').map((line) => line.text);
      expect(texts).toEqual(expectedLines);
    }
  }, 120_000);
});

describe('PostgreSQL unreachable when the server starts', () => {
  it('waits for it with backoff and one log line, then serves', async () => {
    const { db, proxy, url } = await proxiedDatabase();
    await proxy.cut();
    const store = createPostgresStore({ connectionString: url }, { poolSize: 2 });
    const provider = new ProcessProvider({ maxWorkers: 1 });
    const logger = recordingLogger();
    let platform: Platform | undefined;
    try {
      const starting = createPlatform({ store, providers: [provider], logger });
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      await proxy.restore();
      platform = await starting;
      const job = await platform.client.queue({ name: 'after-start', command: 'echo up' });
      expect((await platform.client.wait(job.id)).state).toBe('SUCCEEDED');
      expect(logger.lines.filter((line) => line.level === 'warn' && /store postgres unavailable/.test(line.message))).toHaveLength(1);
      expect(logger.lines.some((line) => /store postgres is reachable again/.test(line.message))).toBe(true);
    } finally {
      await platform?.close();
      await store.close();
      await proxy.close();
      await db.drop();
    }
    expect(provider.pids).toEqual([]);
  }, 60_000);
});

describe('PostgreSQL unavailable for longer than the heartbeat timeout (shorter than the store retry)', () => {
  it('loses no connected worker: the heartbeats written late do not make them look silent', async () => {
    const { db, proxy, url } = await proxiedDatabase();
    const store = createPostgresStore({ connectionString: url }, { poolSize: 4, listenHealthCheckMs: 300 });
    const direct = createPostgresStore({ connectionString: db.url }, { poolSize: 2 });
    const provider = new ProcessProvider({ maxWorkers: 2, stopGraceMs: 2_000 });
    let platform: Platform | undefined;
    try {
      platform = await createPlatform({ store, providers: [provider], heartbeatTimeoutMs: 4_000, logger: recordingLogger() });
      const jobs: Job[] = [];
      for (let index = 0; index < 2; index++) jobs.push(await platform.client.queue({ name: `long-${index}`, command: 'sleep 12; echo done' }));
      await until(async () => {
        const states = await Promise.all(jobs.map(async (job) => (await direct.getJob(job.id))?.state));
        return states.every((state) => state === 'RUNNING') ? true : undefined;
      }, 30_000);
      await proxy.cut();
      await new Promise((resolve) => setTimeout(resolve, 7_000)); // longer than the 4 s heartbeat timeout
      await proxy.restore();
      const ended = await until(async () => {
        const all = await Promise.all(jobs.map((job) => direct.getJob(job.id)));
        return all.every((job) => job && isTerminalJobState(job.state)) ? (all as Job[]) : undefined;
      }, 60_000);
      expect(ended.map((job) => job.state)).toEqual(['SUCCEEDED', 'SUCCEEDED']);
      expect((await direct.listWorkers()).filter((worker) => worker.state === 'LOST')).toEqual([]);
    } finally {
      await proxy.restore();
      await platform?.close();
      await store.close();
      await direct.close();
      await proxy.close();
      await db.drop();
    }
  }, 120_000);
});
