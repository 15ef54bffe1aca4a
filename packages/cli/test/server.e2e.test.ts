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

  it('serves on when the reader of its stdout exits (| grep -m1 listening), then drains and exits 0', async () => {
    // The metrics line comes after the listening line: written once the reader has gone.
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
