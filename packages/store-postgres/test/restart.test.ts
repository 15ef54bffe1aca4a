import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPlatform, HodeiClient, isTerminalJobState, type Job, type Platform } from '@hodei/core';
import { ProcessProvider } from '@hodei/provider-process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresStore, type PostgresStore } from '../src';
import { createTestDatabase, until, type TestDatabase } from './helpers';

/** Processes whose environment has `NAME=value` (workers and their jobs inherit their server's environment). */
function pidsWithEnv(name: string, value: string): number[] {
  const wanted = `${name}=${value}`;
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0').includes(wanted)) pids.push(Number(entry));
    } catch {
      // gone meanwhile, or not ours
    }
  }
  return pids;
}

function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

const LINES = 60;

describe('restart on PostgreSQL with jobs queued and running', () => {
  let db: TestDatabase;
  let direct: PostgresStore;
  let dir: string;
  let server: ChildProcess | undefined;
  let restarted: Platform | undefined;
  let restartedStore: PostgresStore | undefined;
  let provider: ProcessProvider | undefined;
  const run = randomBytes(6).toString('hex');

  beforeAll(async () => {
    db = await createTestDatabase();
    direct = createPostgresStore({ connectionString: db.url }, { poolSize: 2 });
    await direct.migrate();
    dir = mkdtempSync(join(tmpdir(), 'hodei-restart-'));
  });

  afterAll(async () => {
    server?.kill('SIGKILL');
    await restarted?.close();
    expect(provider?.pids ?? []).toEqual([]);
    // The first server's workers outlived it on purpose; end them (and their jobs) now.
    killAll(pidsWithEnv('HODEI_TEST_RUN', run));
    await restartedStore?.close();
    await direct?.close();
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('runs queued jobs, lands the result and lines of a surviving worker, and re-queues or fails the jobs of dead ones', async () => {
    server = spawn(process.execPath, [join(import.meta.dirname, 'fixtures/server-process.mjs')], {
      env: { ...process.env, HODEI_TEST_DATABASE: db.url, HODEI_TEST_RUN: run },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const address = await new Promise<string>((resolve, reject) => {
      let output = '';
      server!.stdout!.setEncoding('utf8').on('data', (text: string) => {
        output += text;
        const match = /listening (\S+)/.exec(output);
        if (match) resolve(match[1]!);
      });
      server!.once('exit', (code) => reject(new Error(`the server exited early (code ${code})`)));
    });
    const port = Number(address.split(':')[1]);
    const client = new HodeiClient({ address });
    const env = { DIR: dir };
    let survivor: Job, goneRetry: Job, goneFail: Job;
    const queued: Job[] = [];
    try {
      survivor = await client.queue({ name: 'survivor', command: `for i in $(seq 1 ${LINES}); do echo line-$i; sleep 0.1; done`, env });
      goneRetry = await client.queue({
        name: 'gone-retry',
        command: 'if [ -e "$DIR/gone-retry.ran" ]; then echo second-attempt; else touch "$DIR/gone-retry.ran"; sleep 30; fi',
        env,
        maxAttempts: 2,
      });
      goneFail = await client.queue({ name: 'gone-fail', command: 'sleep 30', env });
      // The server runs three workers at most: these two wait in the queue.
      for (let index = 0; index < 2; index += 1) queued.push(await client.queue({ name: `queued-${index}`, command: `echo queued-${index}` }));
    } finally {
      client.close();
    }

    const running = await until(async () => {
      const jobs = await Promise.all([survivor, goneRetry, goneFail].map((job) => direct.getJob(job.id)));
      return jobs.every((job) => job?.state === 'RUNNING') ? (jobs as Job[]) : undefined;
    }, 60_000, 'three running jobs');
    await until(async () => ((await direct.readLogs(survivor.id, 3, 1)).length > 0 ? true : undefined), 20_000, 'some output');
    for (const job of await Promise.all(queued.map((one) => direct.getJob(one.id)))) expect(job?.state).toBe('QUEUED');

    // The server dies without a word; two of its workers die too, one survives.
    server.kill('SIGKILL');
    await new Promise((resolve) => server!.once('exit', resolve));
    server = undefined;
    const [survivorRun, retryRun, failRun] = running as [Job, Job, Job];
    killAll([...pidsWithEnv('HODEI_WORKER_ID', retryRun.workerId!), ...pidsWithEnv('HODEI_WORKER_ID', failRun.workerId!)]);

    // A new server on the same database and port.
    restartedStore = createPostgresStore({ connectionString: db.url }, { poolSize: 4 });
    provider = new ProcessProvider({ maxWorkers: 3, stopGraceMs: 2_000 });
    restarted = await createPlatform({ store: restartedStore, providers: [provider], port, heartbeatTimeoutMs: 20_000, retryBackoffMs: 100 });

    const all = [survivor, goneRetry, goneFail, ...queued];
    const finished = await until(async () => {
      const jobs = await Promise.all(all.map((job) => direct.getJob(job.id)));
      return jobs.every((job) => job && isTerminalJobState(job.state)) ? (jobs as Job[]) : undefined;
    }, 90_000, 'every job to finish after the restart');
    const [survivorDone, retryDone, failDone, ...queuedDone] = finished;

    // The surviving worker reconnected with its session token: same run, its result landed.
    expect(survivorDone).toMatchObject({ state: 'SUCCEEDED', exitCode: 0, attempt: 1, workerId: survivorRun.workerId });
    expect((await direct.listAudit(survivorRun.workerId!)).map((event) => event.eventType)).toContain('worker.reconnected');
    // A dead worker's job with an attempt left ran again; without one it failed, saying why.
    expect(retryDone).toMatchObject({ state: 'SUCCEEDED', attempt: 2 });
    expect((await direct.readLogs(goneRetry.id, 1, 100)).map((line) => line.text)).toContain('second-attempt');
    expect(failDone).toMatchObject({ state: 'FAILED', failureReason: 'WORKER_LOST', attempt: 1 });
    expect(failDone!.errorMessage).toMatch(/was lost/);
    for (const job of queuedDone) expect(job).toMatchObject({ state: 'SUCCEEDED', exitCode: 0 });

    // Every line of the surviving job landed exactly once and in order: the worker resent what the killed
    // server had not acknowledged, and the new server skipped what the store already had.
    const texts = (await direct.readLogs(survivor.id, 1, 10_000)).filter((line) => line.stream === 'stdout').map((line) => line.text);
    expect(texts).toEqual(Array.from({ length: LINES }, (_, index) => `line-${index + 1}`));
  }, 180_000);
});
