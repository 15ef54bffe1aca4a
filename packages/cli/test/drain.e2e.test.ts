import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CAN_SEE_PROCESSES, runCli, startCli, until } from './helpers/cli';
import { startServer } from './helpers/server';

describe('hodei server drain on SIGTERM', () => {
  it('lets a running job finish within --drain-grace, refuses new jobs meanwhile, then exits 0', async () => {
    const server = await startServer(['--drain-grace', '60s']);
    // The job waits for a file the test creates once the drain has begun, so it provably outlives the signal.
    const gate = `/tmp/hodei-drain-gate-${process.pid}-${Date.now()}`;
    const running = startCli(['job', 'run', '--', `echo started; while [ ! -e ${gate} ]; do sleep 0.1; done; echo finished; rm -f ${gate}`], {
      server: server.address,
      timeoutMs: 60_000,
    });
    await until(() => (running.output().stdout.includes('started') ? true : undefined));

    server.signal('SIGTERM');
    await until(() => (/draining/.test(server.output().stderr) ? true : undefined));
    const refused = await runCli(['job', 'queue', '--', 'echo too late'], { server: server.address });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^hodei: the server is draining .*accepts no new jobs/);
    expect(refused.stdout).toBe('');

    await runCli(['job', 'list'], { server: server.address }); // still serving reads while draining
    writeFileSync(gate, '');
    const run = await running.result;
    expect(run.stdout).toBe('started\nfinished\n');
    expect(run.code).toBe(0);
    const { result, leftover } = await server.stop();
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/hodei: drained; workers and server stopped/);
    expect(leftover).toEqual([]);
  });

  it('stops a job still running when the grace ends, leaves none of its processes, and exits 0', async () => {
    const server = await startServer(['--drain-grace', '1s']);
    const running = startCli(['job', 'run', '--', 'echo started; sleep 300'], { server: server.address, timeoutMs: 60_000 });
    await until(() => (running.output().stdout.includes('started') ? true : undefined));
    const before = server.workerPids();
    if (CAN_SEE_PROCESSES) expect(before.length).toBeGreaterThanOrEqual(2); // the worker and its job's shell/sleep

    server.signal('SIGTERM');
    const run = await running.result;
    expect(run.code).not.toBe(0);
    const { result, leftover } = await server.stop();
    expect(result.code).toBe(0);
    expect(result.signal).toBeNull();
    expect(result.stderr).toMatch(/hodei: stopped the jobs still running/);
    expect(leftover).toEqual([]);
    for (const pid of before) expect(() => process.kill(pid, 0)).toThrow();
  });

  it('a second signal ends the grace at once', async () => {
    const server = await startServer(['--drain-grace', '10m']);
    const running = startCli(['job', 'run', '--', 'echo started; sleep 300'], { server: server.address, timeoutMs: 60_000 });
    await until(() => (running.output().stdout.includes('started') ? true : undefined));
    server.signal('SIGTERM');
    await until(() => (/draining/.test(server.output().stderr) ? true : undefined));
    server.child.kill('SIGTERM'); // the second (server.stop() below sends none: already signalled)
    const { result, leftover } = await server.stop();
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/second signal/);
    expect(leftover).toEqual([]);
    expect((await running.result).code).not.toBe(0);
  });
});
