import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { JobOutcome, LogStream } from '@hodei/core/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeServer, type FakeConnection } from './fake-server';
import { isAlive, spec, survivors } from './helpers';

const packageDir = fileURLToPath(new URL('..', import.meta.url));
const cli = `${packageDir}dist/cli.cjs`;
const servers: FakeServer[] = [];

beforeAll(() => {
  // The bin is tested as shipped: build it first.
  execFileSync('npx', ['tsup'], { cwd: packageDir, stdio: 'ignore' });
}, 60_000);

afterAll(async () => {
  for (const server of servers) await server.stop();
});

function runCli(env: NodeJS.ProcessEnv, args: string[] = []): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [cli, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

async function startCliWorker(): Promise<{ child: ChildProcess; connection: FakeConnection; exit: Promise<number | null>; stderr: () => string }> {
  const server = await new FakeServer().start();
  servers.push(server);
  const next = server.nextConnection();
  const child = spawn(process.execPath, [cli], {
    env: { PATH: process.env.PATH, HODEI_SERVER_ADDRESS: `http://${server.address}`, HODEI_OTP_TOKEN: 'otp-cli', HODEI_WORKER_ID: 'cli-worker' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const exit = once(child, 'exit').then(([code]) => code as number | null);
  return { child, connection: await next, exit, stderr: () => stderr };
}

/** Live (non-zombie) processes of the process group `pgid`, read from /proc. */
function groupMembers(pgid: number): number[] {
  return readdirSync('/proc').flatMap((entry) => {
    if (!/^\d+$/.test(entry)) return [];
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const [state, , group] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return state !== 'Z' && Number(group) === pgid ? [Number(entry)] : [];
    } catch {
      return []; // gone meanwhile
    }
  });
}

describe('hodei-worker bin', () => {
  it('exits 2 naming the missing variable when the environment is empty', async () => {
    const result = await runCli({});
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('HODEI_SERVER_ADDRESS is not set');
    const noToken = await runCli({ HODEI_SERVER_ADDRESS: '127.0.0.1:1', HODEI_WORKER_ID: 'w' });
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toContain('HODEI_OTP_TOKEN');
  });

  it('--help lists the variables', async () => {
    const result = await runCli({}, ['--help']);
    expect(result.code).toBe(0);
    for (const name of ['HODEI_SERVER_ADDRESS', 'HODEI_OTP_TOKEN', 'HODEI_WORKER_ID', 'HODEI_WORKER_CAPACITY', 'HODEI_WORKER_LABELS']) {
      expect(result.stdout).toContain(name);
    }
  });

  it('exits 1 when the server is unreachable', async () => {
    const result = await runCli({ HODEI_SERVER_ADDRESS: '127.0.0.1:1', HODEI_OTP_TOKEN: 't', HODEI_WORKER_ID: 'w' });
    expect(result.code).toBe(1);
  });

  it('SIGTERM drains: the running job finishes, then the worker exits 0', async () => {
    const { child, connection, exit } = await startCliWorker();
    connection.send({ $case: 'runJob', value: { jobId: 'j', epoch: 1, attempt: 1, firstLogSeq: 1, acks: [], spec: spec({ command: 'sleep 0.3; echo "done ${HODEI_OTP_TOKEN-no-token}"' }) } });
    await connection.until(() => connection.starts('j').length === 1, 5_000, 'the start');
    child.kill('SIGTERM');
    expect(await exit).toBe(0);
    expect(connection.all('jobFinished')[0]).toMatchObject({ outcome: JobOutcome.JOB_OUTCOME_EXITED, exitCode: 0 });
    expect(connection.logs('j').filter((e) => e.stream === LogStream.LOG_STREAM_STDOUT).map((e) => e.text)).toEqual(['done no-token']);
  });

  it('a second SIGTERM cancels the running job; a third exits at once, killing the job', async () => {
    const worker = await startCliWorker();
    worker.connection.send({ $case: 'runJob', value: { jobId: 'k', epoch: 1, attempt: 1, firstLogSeq: 1, acks: [], spec: spec({ command: 'sleep 1000' }) } });
    await worker.connection.until(() => worker.connection.starts('k').length === 1, 5_000, 'the start');
    worker.child.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 100));
    worker.child.kill('SIGTERM');
    expect(await worker.exit).toBe(0);
    expect(worker.connection.all('jobFinished')[0]?.outcome).toBe(JobOutcome.JOB_OUTCOME_CANCELLED);

    const stubborn = await startCliWorker();
    stubborn.connection.send({ $case: 'runJob', value: { jobId: 's', epoch: 1, attempt: 1, firstLogSeq: 1, acks: [], spec: spec({ command: "trap '' TERM; sleep 1000 & echo $!; wait; wait" }) } });
    await stubborn.connection.until(() => stubborn.connection.logs('s').some((e) => /^\d+$/.test(e.text)), 5_000, 'the pid');
    const pids = [stubborn.connection.starts('s')[0]!.pid, ...stubborn.connection.logs('s').filter((e) => /^\d+$/.test(e.text)).map((e) => Number(e.text))];
    for (let i = 0; i < 3; i++) {
      stubborn.child.kill('SIGTERM');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // Exit code 1, not the 0 of a cancel that waited out the kill grace and drained: the third signal aborted.
    expect(await stubborn.exit).toBe(1);
    expect(await survivors(pids)).toEqual([]);
  });

  it('a worker killed with SIGKILL leaves no process of its job behind (its orphan reaper kills the group)', async () => {
    const worker = await startCliWorker();
    // A tree: the job's shell, two background sleeps, one of them TERM-proof, and a nested shell with its own sleep.
    const command = "sleep 1000 & echo $!; (trap '' TERM; sleep 1000) & echo $!; bash -c 'sleep 1000 & echo $!; wait' & echo $!; wait";
    worker.connection.send({ $case: 'runJob', value: { jobId: 'orphan', epoch: 1, attempt: 1, firstLogSeq: 1, acks: [], spec: spec({ command }) } });
    const pidLines = () => worker.connection.logs('orphan').filter((e) => /^\d+$/.test(e.text));
    await worker.connection.until(() => pidLines().length === 4, 10_000, 'the pids of the job tree');
    const pgid = worker.connection.starts('orphan')[0]!.pid;
    const pids = [pgid, ...pidLines().map((e) => Number(e.text))];
    expect(pids.every(isAlive)).toBe(true);
    expect(groupMembers(pgid).length).toBeGreaterThanOrEqual(pids.length);
    try {
      worker.child.kill('SIGKILL');
      expect(await worker.exit).toBe(null);
      // The sidecar sends SIGTERM, then SIGKILL after its 2 s grace to what ignored it.
      expect(await survivors(pids, 10_000)).toEqual([]);
      expect(groupMembers(pgid)).toEqual([]);
    } finally {
      for (const pid of groupMembers(pgid)) process.kill(pid, 'SIGKILL'); // a failed run leaves nothing either
    }
  });
});
