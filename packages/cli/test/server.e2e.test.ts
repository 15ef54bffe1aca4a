import { describe, expect, it } from 'vitest';
import { CAN_SEE_PROCESSES, startCli, until } from './helpers/cli';
import { startServer } from './helpers/server';

describe('hodei server', () => {
  it('prints the real port for --port 0', async () => {
    const server = await startServer();
    expect(server.address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(server.address).not.toMatch(/:0$/);
    const { result, leftover } = await server.stop();
    expect(result.code).toBe(0);
    expect(leftover).toEqual([]);
  });

  it('--worker-label gives its workers labels: a job queued with that --label runs on them', async () => {
    const server = await startServer(['--worker-label', 'gpu=yes']);
    const run = await startCli(['job', 'run', '-q', '--label', 'gpu=yes', '--', 'echo labelled'], { server: server.address }).result;
    expect(run).toMatchObject({ code: 0, stdout: 'labelled\n' });
    const { result } = await server.stop();
    expect(result.code).toBe(0);
  });

  it('logs what the engine does at --log-level info: the job queued, started on a worker and ended, the worker started', async () => {
    const server = await startServer(['--log-level', 'info']);
    const run = await startCli(['job', 'run', '-q', '--name', 'logged', '--', 'true'], { server: server.address }).result;
    expect(run.code).toBe(0);
    const { result } = await server.stop();
    const messages = result.stderr
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => (JSON.parse(line) as { msg: string }).msg);
    expect(messages).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^provider process started a worker$/),
        expect.stringMatching(/^job job-\S+ \(logged\) queued$/),
        expect.stringMatching(/^job job-\S+ started on worker w-\S+ \(attempt 1, \d+ ms after it was queued\)$/),
        expect.stringMatching(/^job job-\S+ SUCCEEDED \(exit code 0\)$/),
      ]),
    );
  });

  it('serves on when the reader of its stdout exits (| grep -m1 listening), then drains and exits 0', async () => {
    // Both lines are in the pipe before startServer returns, and the server writes nothing to stdout after them:
    // this checks that it serves on and drains cleanly once its reader has gone. A write after the reader went
    // (EPIPE) is exercised by `job run | head -1` and `job logs --follow | head -1` in jobs.e2e.test.ts.
    const server = await startServer(['--metrics-port', '0']);
    server.child.stdout!.destroy();
    await new Promise((resolve) => setTimeout(resolve, 300));
    const run = await startCli(['job', 'run', '-q', '--', 'echo still-serving'], { server: server.address }).result;
    expect(run).toMatchObject({ code: 0, stdout: 'still-serving\n' });
    const { result } = await server.stop();
    expect(result.code).toBe(0);
    expect(result.stderr).not.toMatch(/EPIPE|node:events/);
  });

  it.each(['SIGTERM', 'SIGINT'] as const)('with --drain-grace 0, %s stops its workers and their running jobs at once, then exits 0', async (signal) => {
    const server = await startServer(['--idle-timeout', '5m', '--drain-grace', '0']);
    const running = startCli(['job', 'run', '--', 'echo started; sleep 30'], { server: server.address });
    await until(() => (running.output().stdout.includes('started') ? true : undefined));
    const before = server.workerPids();
    if (CAN_SEE_PROCESSES) expect(before.length).toBeGreaterThanOrEqual(2); // the worker and its job's shell/sleep

    server.signal(signal);
    const run = await running.result;
    expect(run.code).not.toBe(0);
    const { result, leftover } = await server.stop();
    expect(result.code).toBe(0);
    expect(result.signal).toBeNull();
    expect(leftover).toEqual([]);
    for (const pid of before) expect(() => process.kill(pid, 0)).toThrow();
  });
});
