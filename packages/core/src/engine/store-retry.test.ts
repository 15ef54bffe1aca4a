import { describe, expect, it } from 'vitest';
import { HodeiError } from '../domain/errors';
import type { Logger } from '../ports/logger';
import type { Store } from '../ports/store';
import { MemoryStore } from '../store/memory-store';
import { makeTestJob } from '../testing/store-conformance';
import { withStoreRetry } from './store-retry';

/** A MemoryStore whose data calls fail with UNAVAILABLE while `down` is true (a fake of an outage). */
function flaky(): { store: Store; setDown(down: boolean): void; failures: () => number } {
  const inner = new MemoryStore();
  let down = false;
  let failures = 0;
  const store = new Proxy(inner, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function' || property === 'close' || property === 'onJobChanged') return value;
      return async (...args: unknown[]) => {
        if (down) {
          failures += 1;
          throw new HodeiError('UNAVAILABLE', `memory store: ${String(property)} failed: connection refused`);
        }
        return (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
      };
    },
  });
  return { store, setDown: (value) => (down = value), failures: () => failures };
}

function recordingLogger(): Logger & { lines: { level: string; message: string }[] } {
  const lines: { level: string; message: string }[] = [];
  const record = (level: string) => (_: Record<string, unknown>, message: string) => void lines.push({ level, message });
  return { lines, debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') };
}

describe('withStoreRetry', () => {
  it('retries calls while the store is unavailable, logs the outage once and its end once', async () => {
    const { store, setDown, failures } = flaky();
    const logger = recordingLogger();
    const retrying = withStoreRetry(store, { logger, minDelayMs: 5, maxDelayMs: 20 });
    const job = makeTestJob();
    setDown(true);
    const inserted = retrying.insertJob(job);
    const read = retrying.getJob(job.id);
    while (failures() < 6) await new Promise((resolve) => setTimeout(resolve, 5));
    setDown(false);
    await inserted;
    expect(await read).toBeDefined();
    expect(await retrying.getJob(job.id)).toEqual(job);
    expect(logger.lines.filter((line) => line.level === 'warn')).toHaveLength(1);
    expect(logger.lines.find((line) => line.level === 'warn')!.message).toMatch(/store memory unavailable .*connection refused.*retrying/);
    expect(logger.lines.filter((line) => line.level === 'info').map((line) => line.message)).toEqual(['store memory is reachable again']);
  });

  it('gives up after giveUpAfterMs and throws the store error', async () => {
    const { store, setDown } = flaky();
    const logger = recordingLogger();
    const retrying = withStoreRetry(store, { logger, minDelayMs: 5, maxDelayMs: 10, giveUpAfterMs: 60 });
    setDown(true);
    await expect(retrying.getJob('job_x')).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(logger.lines.some((line) => line.level === 'error' && /giving up on getJob/.test(line.message))).toBe(true);
  });

  it('passes other errors through at once', async () => {
    const retrying = withStoreRetry(new MemoryStore(), { logger: recordingLogger() });
    const job = makeTestJob();
    await retrying.insertJob(job);
    await expect(retrying.insertJob(job)).rejects.toMatchObject({ code: 'CONFLICT' });
  });

  it('retries an ABORTED call (serialization failure, deadlock) without logging an outage; passes INTERNAL through', async () => {
    const inner = new MemoryStore();
    let calls = 0;
    const racing: Store = Object.assign(Object.create(inner) as Store, {
      async getJob(id: string) {
        calls += 1;
        if (calls <= 2) throw new HodeiError('ABORTED', 'postgres store: getJob: deadlock detected');
        return inner.getJob(id);
      },
      async listJobs() {
        throw new HodeiError('INTERNAL', 'postgres store: listJobs failed: value too long');
      },
    });
    const logger = recordingLogger();
    const retrying = withStoreRetry(racing, { logger, minDelayMs: 1 });
    await expect(retrying.getJob('job_x')).resolves.toBeUndefined();
    expect(calls).toBe(3);
    await expect(retrying.listJobs({})).rejects.toMatchObject({ code: 'INTERNAL' });
    expect(logger.lines).toEqual([]);
  });

  it('takes a CONFLICT on the retry of an insert whose first attempt lost its connection as success', async () => {
    const inner = new MemoryStore();
    let calls = 0;
    const inDoubt: Store = Object.assign(Object.create(inner) as Store, {
      async insertJob(job: Parameters<Store['insertJob']>[0]) {
        calls += 1;
        await inner.insertJob(job);
        if (calls === 1) throw new HodeiError('UNAVAILABLE', 'connection lost after commit');
      },
    });
    const retrying = withStoreRetry(inDoubt, { logger: recordingLogger(), minDelayMs: 1 });
    await expect(retrying.insertJob(makeTestJob())).resolves.toBeUndefined();
    expect(calls).toBe(2);
  });
});
