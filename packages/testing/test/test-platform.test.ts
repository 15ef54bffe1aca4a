import { afterAll, describe, expect, onTestFinished, test } from 'vitest';
import { createTestPlatform, type TestPlatform } from '../src/index';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('createTestPlatform', () => {
  let shared: TestPlatform;

  test('starts on a free port of 127.0.0.1 and runs a job to its end', async () => {
    shared = await createTestPlatform({ afterAll });
    expect(shared.address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(shared.address).not.toBe('127.0.0.1:0');
    const { job, stdout, stderr, lines } = await shared.run('echo hi | tr a-z A-Z; echo oops >&2');
    expect(job.state).toBe('SUCCEEDED');
    expect(job.exitCode).toBe(0);
    expect(stdout).toEqual(['HI']);
    expect(stderr).toEqual(['oops']);
    const output = lines.filter((line) => line.stream !== 'system');
    expect(output.map((line) => line.stream).sort()).toEqual(['stderr', 'stdout']);
    const seqs = lines.map((line) => line.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
  });

  test('run() takes a full spec and resolves (does not reject) when the job fails', async () => {
    const { job, stdout } = await shared.run({ name: 'fails', command: 'echo before; exit 3', env: { X: '1' } });
    expect(job.spec.name).toBe('fails');
    expect(job.state).toBe('FAILED');
    expect(job.exitCode).toBe(3);
    expect(stdout).toEqual(['before']);
  });

  test('run() rejects an invalid spec with a message naming the field', async () => {
    await expect(shared.run({ name: '', command: 'true' })).rejects.toThrow(/name/);
  });

  test('the client is usable directly', async () => {
    const queued = await shared.client.queue({ name: 'direct', command: 'echo direct' });
    const done = await shared.client.wait(queued.id);
    expect(done.state).toBe('SUCCEEDED');
  });
});

test('two platforms run side by side on different ports', async () => {
  const a = await createTestPlatform({ onTestFinished });
  const b = await createTestPlatform({ onTestFinished });
  expect(a.address).not.toBe(b.address);
  const [ra, rb] = await Promise.all([a.run('echo a'), b.run('echo b')]);
  expect(ra.stdout).toEqual(['a']);
  expect(rb.stdout).toEqual(['b']);
});

test('close() stops the worker processes and the server, and is idempotent', async () => {
  const hodei = await createTestPlatform();
  await hodei.run('true');
  const pids = hodei.provider!.pids;
  expect(pids.length).toBeGreaterThan(0);
  await Promise.all([hodei.close(), hodei.close()]);
  await hodei.close();
  expect(pids.filter(isAlive)).toEqual([]);
  await expect(hodei.client.get('nope')).rejects.toThrow();
});

test('Symbol.asyncDispose closes it', async () => {
  const hodei = await createTestPlatform();
  await hodei.run('true');
  const pids = hodei.provider!.pids;
  await hodei[Symbol.asyncDispose]();
  expect(pids.filter(isAlive)).toEqual([]);
});

test('await using closes it at the end of the block', async () => {
  let pids: number[];
  {
    await using hodei = await createTestPlatform();
    await hodei.run('true');
    pids = hodei.provider!.pids;
    expect(pids.length).toBeGreaterThan(0);
  }
  expect(pids.filter(isAlive)).toEqual([]);
});

test('passes engine and provider options through', async () => {
  const hodei = await createTestPlatform({ processProvider: { maxWorkers: 1, labels: { pool: 'test' } } });
  onTestFinished(() => hodei.close());
  const { job } = await hodei.run({ name: 'labelled', command: 'true', labels: { pool: 'test' } });
  expect(job.state).toBe('SUCCEEDED');
  const workers = await hodei.client.listWorkers();
  expect(workers.every((worker) => worker.labels.pool === 'test')).toBe(true);
});
