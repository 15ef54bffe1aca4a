import type { Job, Platform } from '@hodei/core';
import { makeTestJob } from '@hodei/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { changedChannel, createPostgresStore, type PostgresStore } from '../src';
import { until } from './helpers';
import { startTwoServers, type TwoServers } from './two-servers';

/** Rejects when `promise` does not settle within `ms`: the test fails instead of hanging. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A QUEUED job asking for labels neither server's provider offers: no engine claims it. */
function unclaimableJob() {
  const job = makeTestJob();
  return { ...job, spec: { ...job.spec, labels: { site: 'nowhere' } } };
}

describe('wait() through one server on a job another server runs (one database)', () => {
  let servers: TwoServers;
  let storeA: PostgresStore;
  let a: Platform;
  let b: Platform;

  beforeAll(async () => {
    // Server A cannot run jobs labelled site=b: only B's workers take them.
    servers = await startTwoServers({
      store: { poolSize: 4 },
      providerA: { maxWorkers: 1, labels: { site: 'a' } },
      providerB: { maxWorkers: 1, labels: { site: 'b' } },
    });
    ({ storeA, a, b } = servers);
  });

  afterAll(async () => {
    await servers?.close();
  });

  it('a client of server A waiting on a job server B runs learns each state change and the end', async () => {
    const job = await a.client.queue({ name: 'elsewhere', command: 'sleep 0.5; echo done', labels: { site: 'b' } });
    const seen: Job[] = [];
    const watched = (async () => {
      for await (const update of a.client.watch(job.id)) seen.push(update);
    })();
    const done = await within(a.client.wait(job.id), 20_000, "server A's wait() to return");
    expect(done).toMatchObject({ state: 'SUCCEEDED', exitCode: 0 });
    await within(watched, 5_000, "server A's Watch to end");
    expect(seen.map((update) => update.state)).toContain('RUNNING');
    expect(seen.at(-1)?.state).toBe('SUCCEEDED');
    // B ran it: the worker is one of B's.
    const worker = (await storeA.listWorkers()).find((candidate) => candidate.id === done.workerId);
    expect(worker?.labels.site).toBe('b');
  });

  it('hears a cancel made through server B while waiting on server A', async () => {
    const job = await a.client.queue({ name: 'never-runs', command: 'true', labels: { site: 'nowhere' } });
    const waiting = a.client.wait(job.id);
    await b.client.cancel(job.id);
    expect(await within(waiting, 20_000, "server A's wait() to return")).toMatchObject({ state: 'CANCELLED' });
  });

  it('uses a hashed channel name for a schema too long for a plain one, matching the trigger', async () => {
    const schema = `s_${'x'.repeat(50)}`;
    expect(changedChannel(schema)).toMatch(/^hodei_job_changed_[0-9a-f]{32}$/);
    const store = createPostgresStore({ connectionString: servers.db.url }, { schema, poolSize: 2 });
    // The change is written through another store: `store` hears it only through the trigger's NOTIFY.
    const writer = createPostgresStore({ connectionString: servers.db.url }, { schema, poolSize: 1 });
    try {
      const heard: string[] = [];
      const off = store.onJobChanged((jobId) => jobId && heard.push(jobId));
      const job = makeTestJob();
      await writer.insertJob(job);
      const deadline = Date.now() + 10_000;
      let epoch = 0;
      while (!heard.includes(job.id) && Date.now() < deadline) {
        await writer.updateJob(job.id, { epoch }, { state: epoch % 2 === 0 ? 'ASSIGNED' : 'QUEUED', epoch: epoch + 1 });
        epoch += 1;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      off();
      expect(heard).toContain(job.id);
    } finally {
      await writer.close();
      await store.close();
    }
  });

  it("announces a state change made through the store itself once (not again when the trigger's NOTIFY comes back), and one made through another store", async () => {
    const heardA: string[] = [];
    const heardB: string[] = [];
    const offA = storeA.onJobChanged((jobId) => jobId && heardA.push(jobId));
    const offB = servers.storeB.onJobChanged((jobId) => jobId && heardB.push(jobId));
    try {
      // A NOTIFY sent before a LISTEN connection is up is not heard: wait for both.
      await until(() => (storeA.listenerConnections > 0 && servers.storeB.listenerConnections > 0) || undefined, 10_000, 'both LISTEN connections');
      // Jobs no worker of either server may run: otherwise an engine may claim one between its insert and its
      // update, and that claim is a change through the other store, announced once more.
      const own = unclaimableJob();
      await storeA.insertJob(own);
      await storeA.updateJob(own.id, { states: ['QUEUED'] }, { state: 'CANCELLED', completedAt: Date.now() });
      // Announced as the update returned, before its NOTIFY could be heard.
      expect(heardA.filter((id) => id === own.id)).toHaveLength(1);
      // B hears it through the NOTIFY, which reaches A's LISTEN connection too: A does not announce it again.
      await until(() => heardB.includes(own.id) || undefined, 10_000, "server B's hearing of A's change");
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(heardA.filter((id) => id === own.id)).toHaveLength(1);

      const other = unclaimableJob();
      await servers.storeB.insertJob(other);
      await servers.storeB.updateJob(other.id, { states: ['QUEUED'] }, { state: 'CANCELLED', completedAt: Date.now() });
      await until(() => heardA.includes(other.id) || undefined, 10_000, "server A's hearing of B's change");
    } finally {
      offA();
      offB();
    }
  });
});
