import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPlatform, HodeiError, type Platform } from '@hodei/core';
import { ProcessProvider } from '../src';
import { collectLogs, eventually, isAlive, textOf, waitForLine } from './helpers';

describe('embedded platform with the process provider', () => {
  let platform: Platform;
  let provider: ProcessProvider;

  beforeAll(async () => {
    provider = new ProcessProvider({ maxWorkers: 4, stopGraceMs: 2_000 });
    platform = await createPlatform({ providers: [provider], cancelGraceMs: 1_000 });
  });
  afterAll(async () => {
    await platform.close();
    expect(provider.pids).toEqual([]);
  });

  it("seed test 1: runs a shell pipeline through /bin/bash -c and streams its output", async () => {
    const job = await platform.client.queue({ name: 'Shell Test', command: "echo 'test' | grep 'test'" });
    expect(job.state).toBe('QUEUED');
    const lines = await collectLogs(platform.client, job.id);
    expect(lines[0]).toMatchObject({ seq: 1, stream: 'system', text: "$ echo 'test' | grep 'test'" });
    expect(textOf(lines, 'stdout')).toEqual(['test']);
    const done = await platform.client.wait(job.id);
    expect(done).toMatchObject({ state: 'SUCCEEDED', exitCode: 0 });
    expect(done.workerId).toMatch(/^w-/);
    expect(done.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('seed test 2: pipelines over files', async () => {
    const job = await platform.client.queue({ name: 'Pipeline Test', command: 'cat /etc/os-release | grep PRETTY_NAME' });
    const lines = await collectLogs(platform.client, job.id);
    expect(textOf(lines, 'stdout')).toEqual([expect.stringMatching(/^PRETTY_NAME=/)]);
    expect((await platform.client.wait(job.id)).state).toBe('SUCCEEDED');
  });

  it('seed test 3: environment variables, the job env and no leaked token', async () => {
    const job = await platform.client.queue({
      name: 'Env Test',
      command: 'echo "$HOME"; echo "$GREETING"; echo "token=${HODEI_OTP_TOKEN:-none}"',
      env: { GREETING: 'hello world' },
    });
    const stdout = textOf(await collectLogs(platform.client, job.id), 'stdout');
    expect(stdout[0]).not.toBe('');
    expect(stdout.slice(1)).toEqual(['hello world', 'token=none']);
  });

  it("does not pass the server's secrets (auth token, database URL) to workers and jobs, but the rest of its environment", async () => {
    const secrets = { HODEI_AUTH_TOKEN: 'server-token', HODEI_DATABASE_URL: 'postgres://u:secret@127.0.0.1/db', DATABASE_URL: 'postgres://u:secret@127.0.0.1/db2' };
    const saved = Object.fromEntries(Object.keys(secrets).map((name) => [name, process.env[name]]));
    Object.assign(process.env, secrets, { HODEI_TEST_INHERITED: 'inherited' });
    // A fresh provider: its workers start now, with this environment.
    const fresh = await createPlatform({ providers: [new ProcessProvider({ maxWorkers: 1, stopGraceMs: 2_000 })] });
    try {
      const job = await fresh.client.queue({
        name: 'secrets',
        command: 'echo "${HODEI_AUTH_TOKEN:-none} ${HODEI_DATABASE_URL:-none} ${DATABASE_URL:-none} ${HODEI_TEST_INHERITED:-none}"',
      });
      expect(textOf(await collectLogs(fresh.client, job.id), 'stdout')).toEqual(['none none none inherited']);
    } finally {
      await fresh.close();
      delete process.env.HODEI_TEST_INHERITED;
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });

  it('propagates the exit code and keeps stdout and stderr apart', async () => {
    const job = await platform.client.queue({ name: 'exit', command: 'echo out; echo err >&2; exit 7' });
    const lines = await collectLogs(platform.client, job.id);
    expect(textOf(lines, 'stdout')).toEqual(['out']);
    expect(textOf(lines, 'stderr')).toEqual(['err']);
    expect(await platform.client.wait(job.id)).toMatchObject({ state: 'FAILED', exitCode: 7, failureReason: 'EXIT_CODE' });
  });

  it('masks secret env values in every log line and never returns them', async () => {
    const job = await platform.client.queue({
      name: 'secrets',
      command: 'echo "deploy with $DEPLOY_PASS"; echo "$API_TOKEN" >&2; echo "$PLAIN"',
      env: { DEPLOY_PASS: 'correct-horse-battery', API_TOKEN: 'tok-0123456789', PLAIN: 'shown-in-clear' },
      secretEnv: ['DEPLOY_PASS'],
    });
    const lines = await collectLogs(platform.client, job.id);
    expect(textOf(lines, 'stdout')).toEqual(['deploy with ***', 'shown-in-clear']);
    expect(textOf(lines, 'stderr')).toEqual(['***']);
    const seen = JSON.stringify([await platform.client.get(job.id), await platform.client.list(), lines]);
    expect(seen).not.toContain('correct-horse-battery');
    expect(seen).not.toContain('tok-0123456789');
    expect((await platform.client.get(job.id)).spec.env).toEqual({ DEPLOY_PASS: '***', API_TOKEN: '***', PLAIN: 'shown-in-clear' });
  });

  it('shell-quotes extra args instead of joining them raw', async () => {
    const args = ['a b', '$HOME', "it's", '; echo injected'];
    const job = await platform.client.queue({ name: 'args', command: 'printf "%s\\n"', args });
    const lines = await collectLogs(platform.client, job.id);
    expect(textOf(lines, 'stdout')).toEqual(args);
  });

  it('runs a script through its interpreter and logs it as a heredoc', async () => {
    const content = 'x=21\necho $((x * 2))';
    const job = await platform.client.queue({ name: 'script', script: { interpreter: '/bin/bash', content } });
    const lines = await collectLogs(platform.client, job.id);
    expect(textOf(lines, 'system')).toEqual(["$ /bin/bash << 'EOF'", 'x=21', 'echo $((x * 2))', 'EOF']);
    expect(textOf(lines, 'stdout')).toEqual(['42']);
  });

  it('streams lines live, before the job ends', async () => {
    const job = await platform.client.queue({ name: 'live', command: 'echo first; sleep 3; echo second' });
    await waitForLine(platform.client, job.id, 'first');
    expect((await platform.client.get(job.id)).state).toBe('RUNNING');
    expect((await platform.client.wait(job.id)).state).toBe('SUCCEEDED');
  });

  it('times out after 1 s, says so on stderr, and leaves no process of the tree alive', async () => {
    const job = await platform.client.queue({
      name: 'timeout',
      command: 'sleep 1000 & echo $!; bash -c "sleep 1000 & echo \\$!; wait" & sleep 1000',
      timeoutMs: 1_000,
    });
    const lines = await collectLogs(platform.client, job.id);
    const done = await platform.client.wait(job.id);
    expect(done.state).toBe('TIMED_OUT');
    expect(textOf(lines, 'stderr')).toContain('Command timed out after 1 seconds');
    const pids = textOf(lines, 'stdout').map(Number);
    expect(pids).toHaveLength(2);
    await eventually(() => pids.every((pid) => !isAlive(pid)), 3_000);
  });

  it('cancels a running job, its whole tree included', async () => {
    const job = await platform.client.queue({ name: 'cancel', command: "trap '' TERM; sleep 1000 & echo $!; wait" });
    const pid = Number(await nextStdout(platform, job.id));
    await platform.client.cancel(job.id);
    const done = await platform.client.wait(job.id);
    expect(done.state).toBe('CANCELLED');
    await eventually(() => !isAlive(pid), 3_000);
  });

  it('cancels a queued job at once and is idempotent on a finished one', async () => {
    const job = await platform.client.queue({ name: 'q', command: 'true', labels: { pool: 'nowhere' } });
    expect((await platform.client.cancel(job.id)).state).toBe('CANCELLED');
    expect((await platform.client.cancel(job.id)).state).toBe('CANCELLED');
  });

  it('delivers 100,000 lines complete and in order', async () => {
    const job = await platform.client.queue({ name: 'many', command: 'seq 1 100000' });
    const lines = await collectLogs(platform.client, job.id);
    const stdout = textOf(lines, 'stdout');
    expect(stdout).toHaveLength(100_000);
    expect(stdout.every((text, index) => text === String(index + 1))).toBe(true);
    expect(lines.every((line, index) => line.seq === index + 1)).toBe(true);
  });

  it('refuses bad input with the field named, and keeps serving', async () => {
    const codeOf = (promise: Promise<unknown>) =>
      promise.then(
        () => undefined,
        (error: unknown) => (HodeiError.isInstance(error) ? `${error.code}:${error.field}` : String(error)),
      );
    expect(await codeOf(platform.client.queue({ name: 'x', command: '' }))).toBe('INVALID_ARGUMENT:spec.command');
    expect(await codeOf(platform.client.queue({ name: 'x', command: 'true', timeoutMs: -1 }))).toBe(
      'INVALID_ARGUMENT:spec.timeoutMs',
    );
    expect(await codeOf(platform.client.get('job-nope'))).toBe('NOT_FOUND:id');
    expect(await codeOf(platform.client.cancel('job-nope'))).toBe('NOT_FOUND:id');
    const job = await platform.client.queue({ name: 'after', command: 'true' });
    expect((await platform.client.wait(job.id)).state).toBe('SUCCEEDED');
  });
});

describe('provisioning limits and worker lifecycle', () => {
  it('runs 20 concurrent jobs with maxWorkers 4 and never creates more than 4 workers', async () => {
    const provider = new ProcessProvider({ maxWorkers: 4 });
    const platform = await createPlatform({ providers: [provider] });
    try {
      let peak = 0;
      const sampler = setInterval(() => (peak = Math.max(peak, provider.pids.length)), 5);
      const jobs = await Promise.all(
        Array.from({ length: 20 }, (_, index) => platform.client.queue({ name: `j${index}`, command: `echo ${index}` })),
      );
      const results = await Promise.all(jobs.map((job) => platform.client.wait(job.id)));
      clearInterval(sampler);
      expect(results.map((job) => job.state)).toEqual(Array(20).fill('SUCCEEDED'));
      expect(peak).toBeLessThanOrEqual(4);
      expect((await platform.store.listWorkers()).length).toBeLessThanOrEqual(4);
    } finally {
      await platform.close();
    }
  });

  it('fails the job, not hangs, when workers die before registering', async () => {
    const script = "process.stderr.write('worker cannot start: bad config\\n'); process.exit(9)";
    const provider = new ProcessProvider({ maxWorkers: 2, workerCommand: [process.execPath, '-e', script] });
    const platform = await createPlatform({ providers: [provider] });
    try {
      const job = await platform.client.queue({ name: 'never', command: 'true' });
      const done = await platform.client.wait(job.id);
      expect(done).toMatchObject({ state: 'FAILED', failureReason: 'PROVISIONING_FAILED' });
      expect(done.errorMessage).toContain('exited before registering');
      expect(done.errorMessage).toContain('worker cannot start: bad config');
    } finally {
      await platform.close();
    }
  });

  it('caps a job\'s output: keeps the head and the tail with a notice between, and the job still succeeds', async () => {
    const provider = new ProcessProvider({ maxWorkers: 1, env: { HODEI_MAX_LOG_BYTES: '100000' } });
    const platform = await createPlatform({ providers: [provider] });
    try {
      const job = await platform.client.queue({ name: 'flood', command: 'seq 1 1000000' });
      const lines = await collectLogs(platform.client, job.id);
      expect((await platform.client.wait(job.id)).state).toBe('SUCCEEDED');
      const stdout = textOf(lines, 'stdout');
      expect(stdout.slice(0, 3)).toEqual(['1', '2', '3']);
      expect(stdout.at(-1)).toBe('1000000');
      expect(lines.length).toBeLessThan(250_000);
      expect(textOf(lines, 'system').some((text) => text.startsWith('hodei: output truncated:'))).toBe(true);
    } finally {
      await platform.close();
    }
  });

  it('terminates idle workers after the idle timeout', async () => {
    const provider = new ProcessProvider({ maxWorkers: 2 });
    const platform = await createPlatform({ providers: [provider], idleTimeoutMs: 300 });
    try {
      const job = await platform.client.queue({ name: 'one', command: 'true' });
      await platform.client.wait(job.id);
      await eventually(async () => (await platform.client.listWorkers()).every((w) => w.state === 'TERMINATED'), 5_000);
      expect(provider.pids).toEqual([]);
    } finally {
      await platform.close();
    }
  });

  it('notices a worker process that dies mid-job and fails the job with WORKER_LOST', async () => {
    const provider = new ProcessProvider({ maxWorkers: 1 });
    const platform = await createPlatform({ providers: [provider] });
    try {
      const job = await platform.client.queue({ name: 'doomed', command: 'echo $$; exec sleep 1000' });
      const pid = Number(await nextStdout(platform, job.id));
      const started = Date.now();
      process.kill(provider.pids[0]!, 'SIGKILL');
      const done = await platform.client.wait(job.id);
      expect(done).toMatchObject({ state: 'FAILED', failureReason: 'WORKER_LOST' });
      expect(Date.now() - started).toBeLessThan(5_000);
      const [worker] = await platform.client.listWorkers();
      expect(worker?.state).toBe('LOST');
      process.kill(-pid, 'SIGKILL');
    } finally {
      await platform.close();
    }
  });

  it('re-queues the job of a lost worker when attempts remain, and it completes on another worker', async () => {
    const provider = new ProcessProvider({ maxWorkers: 1 });
    const platform = await createPlatform({ providers: [provider] });
    try {
      const job = await platform.client.queue({
        name: 'retry',
        command: 'if [ ! -e "$MARK" ]; then touch "$MARK"; echo $$; exec sleep 1000; fi; echo done',
        env: { MARK: `/tmp/hodei-retry-${process.pid}-${Date.now()}` },
        maxAttempts: 2,
      });
      const pid = Number(await nextStdout(platform, job.id));
      process.kill(provider.pids[0]!, 'SIGKILL');
      const done = await platform.client.wait(job.id);
      expect(done).toMatchObject({ state: 'SUCCEEDED', attempt: 2 });
      process.kill(-pid, 'SIGKILL');
    } finally {
      await platform.close();
    }
  });
});

async function nextStdout(platform: Platform, jobId: string): Promise<string | undefined> {
  for await (const line of platform.client.logs(jobId, { follow: true })) if (line.stream === 'stdout') return line.text;
  return undefined;
}
