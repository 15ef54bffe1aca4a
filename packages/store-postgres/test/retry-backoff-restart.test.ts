import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPlatform, type Platform } from '@hodei/core';
import { ProcessProvider } from '@hodei/provider-process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresStore, type PostgresStore } from '../src';
import { createTestDatabase, until, type TestDatabase } from './helpers';

/**
 * Base of the retry backoff, the longest there is (MAX_RETRY_BACKOFF_MS): a first retry waits 30 s ±20 %, so
 * even a slow restart lands inside it. The test does not wait it out: once the restarted server has shown it
 * skips the job, the test moves the job's stored backoff end closer.
 */
const RETRY_BACKOFF_MS = 30_000;

describe('retry backoff across a server restart on PostgreSQL', () => {
  let db: TestDatabase;
  let direct: PostgresStore;
  let dir: string;
  const servers: { platform: Platform; store: PostgresStore; provider: ProcessProvider }[] = [];

  async function startServer() {
    const store = createPostgresStore({ connectionString: db.url }, { poolSize: 3 });
    const provider = new ProcessProvider({ maxWorkers: 1, stopGraceMs: 2_000 });
    const platform = await createPlatform({ store, providers: [provider], retryBackoffMs: RETRY_BACKOFF_MS });
    const server = { platform, store, provider };
    servers.push(server);
    return server;
  }

  async function stopServer(server: (typeof servers)[number]) {
    await server.platform.close();
    expect(server.provider.pids).toEqual([]);
    await server.store.close();
    servers.splice(servers.indexOf(server), 1);
  }

  beforeAll(async () => {
    db = await createTestDatabase();
    direct = createPostgresStore({ connectionString: db.url }, { poolSize: 2 });
    await direct.migrate();
    dir = mkdtempSync(join(tmpdir(), 'hodei-backoff-'));
  });

  afterAll(async () => {
    for (const server of [...servers]) await stopServer(server);
    await direct?.close();
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a job re-queued (listed exit code) before the server restarts waits out its backoff after it', async () => {
    const first = await startServer();
    // Exits 3 (listed in retryOnExitCodes) the first time, 0 the second; each run appends its start time (ms).
    const job = await first.platform.client.queue({
      name: 'flaky',
      command: 'date +%s%3N >> "$DIR/runs"; test -e "$DIR/ran" && exit 0; touch "$DIR/ran"; exit 3',
      env: { DIR: dir },
      maxAttempts: 2,
      retryOnExitCodes: [3],
    });
    const requeued = await until(async () => {
      const current = await direct.getJob(job.id);
      return current?.state === 'QUEUED' && current.attempt === 2 ? current : undefined;
    }, 60_000, 'the job to be re-queued after exit code 3');
    expect(requeued.notBefore).toBeDefined();
    const notBefore = requeued.notBefore!;
    expect(requeued.exitCode).toBe(3);

    await stopServer(first);
    expect(await direct.getJob(job.id)).toMatchObject({ state: 'QUEUED', attempt: 2, notBefore });
    const second = await startServer();
    // The restart happened inside the backoff, so the new server knows of it only through the store.
    expect(Date.now()).toBeLessThan(notBefore);
    // A job queued after it runs first on the only worker: the new server schedules, and skips the backed-off job.
    const later = await second.platform.client.queue({ name: 'later', command: 'true' });
    expect(await second.platform.client.wait(later.id)).toMatchObject({ state: 'SUCCEEDED' });
    expect(await direct.getJob(job.id)).toMatchObject({ state: 'QUEUED', attempt: 2, notBefore });

    // The backoff ends (moved closer in the store): the new server runs the job then, not before.
    const shortened = Date.now() + 1_000;
    expect(await direct.updateJob(job.id, { states: ['QUEUED'] }, { notBefore: shortened })).toBeDefined();
    expect(await second.platform.client.wait(job.id)).toMatchObject({ state: 'SUCCEEDED', attempt: 2, exitCode: 0 });
    const done = await direct.getJob(job.id);
    expect(done?.assignedAt).toBeGreaterThanOrEqual(shortened);
    expect(done).not.toHaveProperty('notBefore');
    const runs = readFileSync(join(dir, 'runs'), 'utf8').trim().split('\n').map(Number);
    expect(runs).toHaveLength(2);
    expect(runs[1]).toBeGreaterThanOrEqual(shortened);
  });
});
