import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CAN_SEE_PROCESSES, CLI, runCli, startCli, until } from './helpers/cli';
import { startServer, type TestServer } from './helpers/server';

let server: TestServer;
const cli = (args: string[], timeoutMs?: number) => runCli(args, { server: server.address, ...(timeoutMs ? { timeoutMs } : {}) });

interface JsonJob {
  id: string;
  name: string;
  state: string;
  exitCode: number | null;
}

beforeAll(async () => {
  server = await startServer();
});

afterAll(async () => {
  if (!server) return;
  const { result, leftover } = await server.stop();
  expect(result.code).toBe(0);
  expect(result.stderr).not.toMatch(/\n\s+at /);
  expect(leftover).toEqual([]);
});

describe('hodei job run: the seed jobs', () => {
  it("runs echo 'test' | grep 'test'", async () => {
    const run = await cli(['job', 'run', '--name', 'Shell Test', '--', "echo 'test' | grep 'test'"]);
    expect(run.stdout).toBe('test\n');
    expect(run.stderr).toContain("$ echo 'test' | grep 'test'");
    expect(run.code).toBe(0);
  });

  it.runIf(existsSync('/etc/os-release'))('runs cat /etc/os-release | grep PRETTY_NAME', async () => {
    const run = await cli(['job', 'run', '--name', 'OS', '--command', 'cat /etc/os-release | grep PRETTY_NAME']);
    expect(run.stdout).toMatch(/^PRETTY_NAME=.+\n$/);
    expect(run.code).toBe(0);
  });

  it('runs echo $HOME', async () => {
    const run = await cli(['job', 'run', '--', 'echo $HOME']);
    expect(run.stdout.trim()).not.toBe('');
    expect(run.code).toBe(0);
  });
});

describe('hodei job run: output and exit codes', () => {
  it("exits with the job's exit code", async () => {
    expect((await cli(['job', 'run', '--', 'exit 7'])).code).toBe(7);
  });

  it('keeps job stdout on stdout and job stderr on stderr', async () => {
    const run = await cli(['job', 'run', '--', 'echo out; echo err >&2']);
    expect(run.stdout).toBe('out\n');
    expect(run.stderr).toContain('err\n');
    expect(run.code).toBe(0);
  });

  it('passes --env and runs a program with its arguments', async () => {
    const run = await cli(['job', 'run', '--env', 'GREETING=hello world', '--', 'printf', '%s|%s\n', '$GREETING', 'a b']);
    expect(run.stdout).toBe('$GREETING|a b\n');
    const env = await cli(['job', 'run', '--env', 'GREETING=hello world', '--', 'echo "$GREETING"']);
    expect(env.stdout).toBe('hello world\n');
  });

  it('masks --secret values in the logs and in job get --json', async () => {
    const run = await cli(['job', 'run', '--name', 'secret', '--secret', 'DB_PASS=supersecret123', '--', 'echo "pw=$DB_PASS"']);
    expect(run.stdout).toBe('pw=***\n');
    const id = /job (job-\S+) queued/.exec(run.stderr)?.[1];
    expect(id).toBeDefined();
    const get = await cli(['job', 'get', id!, '--json']);
    expect(get.stdout).toContain('"DB_PASS": "***"');
    expect(get.stdout + run.stderr).not.toContain('supersecret123');
  });

  it('runs a --script file', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'hodei-cli-')), 'job.sh');
    writeFileSync(file, 'echo one\necho two\n');
    const run = await cli(['job', 'run', '--script', file]);
    expect(run.stdout).toBe('one\ntwo\n');
    expect(run.code).toBe(0);
  });

  it('exits 124 when the job times out', async () => {
    const run = await cli(['job', 'run', '--timeout', '1s', '--', 'sleep 30']);
    expect(run.code).toBe(124);
    expect(run.ms).toBeLessThan(10_000);
    expect(run.stderr).toContain('timed out');
  });

  it('exits 130 when the job is cancelled with hodei job cancel', async () => {
    const name = `cancel-me-${Date.now()}`;
    const running = startCli(['job', 'run', '--name', name, '--', 'echo started; sleep 30'], { server: server.address });
    const id = await until(async () => {
      const list = await cli(['job', 'list', '--json', '--state', 'RUNNING']);
      return (JSON.parse(list.stdout) as JsonJob[]).find((job) => job.name === name)?.id;
    });
    const cancel = await cli(['job', 'cancel', id]);
    expect(cancel.code).toBe(0);
    const run = await running.result;
    expect(run.code).toBe(130);
    expect(run.ms).toBeLessThan(15_000);
    const job = JSON.parse((await cli(['job', 'get', id, '--json'])).stdout) as JsonJob;
    expect(job.state).toBe('CANCELLED');
  });

  it('cancels the job on SIGINT and exits 130', async () => {
    const running = startCli(['job', 'run', '--', 'echo started; sleep 30'], { server: server.address });
    await until(() => (running.output().stdout.includes('started') ? true : undefined));
    running.child.kill('SIGINT');
    const run = await running.result;
    expect(run.code).toBe(130);
    expect(run.stderr).toContain('cancelled');
  });

  it('cancels the job and exits 130, without a stack trace, when the reader of its output exits (| head -1)', async () => {
    const name = `head-${Date.now()}`;
    const running = startCli(['job', 'run', '--name', name, '--', 'seq 1 200000; sleep 30'], { server: server.address });
    await until(() => (running.output().stdout.length > 0 ? true : undefined));
    running.child.stdout!.destroy(); // as `head -1` exits after its line
    const run = await running.result;
    expect(run.code).toBe(130);
    expect(run.stderr).not.toMatch(/EPIPE|node:events|Error:/);
    const list = JSON.parse((await cli(['job', 'list', '--json'])).stdout) as JsonJob[];
    expect(list.find((job) => job.name === name)?.state).toBe('CANCELLED');
  });

  it('runs 20 jobs at once on 4 workers', async () => {
    const runs = await Promise.all(Array.from({ length: 20 }, (_, i) => cli(['job', 'run', '-q', '--', `echo job-${i}`], 30_000)));
    runs.forEach((run, i) => {
      expect(run.code).toBe(0);
      expect(run.stdout).toBe(`job-${i}\n`);
    });
  });
});

describe('hodei job queue / get / list / logs, hodei worker list', () => {
  it('queues, then reports the job in get, list and logs', async () => {
    const queued = await cli(['job', 'queue', '--name', 'queued-job', '--command', 'echo line1; echo line2; echo oops >&2']);
    expect(queued.code).toBe(0);
    const id = queued.stdout.trim().split('\n').at(-1)!;
    expect(id).toMatch(/^\S+$/);

    const done = await until(async () => {
      const job = JSON.parse((await cli(['job', 'get', id, '--json'])).stdout) as JsonJob;
      return job.state === 'SUCCEEDED' ? job : undefined;
    });
    expect(done).toMatchObject({ id, name: 'queued-job', state: 'SUCCEEDED', exitCode: 0 });

    const human = await cli(['job', 'get', id]);
    expect(human.stdout).toMatch(/^state:\s+SUCCEEDED$/m);

    const list = JSON.parse((await cli(['job', 'list', '--json'])).stdout) as JsonJob[];
    expect(list.find((job) => job.id === id)).toMatchObject({ id, name: 'queued-job', state: 'SUCCEEDED', exitCode: 0 });
    const table = await cli(['job', 'list']);
    expect(table.stdout.split('\n')[0]).toMatch(/^ID\s+NAME\s+STATE\s+EXIT/);
    expect(table.stdout).toContain(id);

    const logs = await cli(['job', 'logs', id]);
    expect(logs.code).toBe(0);
    expect(logs.stdout).toBe('line1\nline2\n');
    expect(logs.stderr).toContain('oops\n');
    const followed = await cli(['job', 'logs', id, '--follow', '--no-system']);
    expect(followed.stdout).toBe('line1\nline2\n');
    expect(followed.stderr).toBe('oops\n');
  });

  it('job logs --follow stops quietly (exit 0) when the reader of its output exits (| head -1)', async () => {
    const queued = await cli(['job', 'queue', '--command', 'seq 1 200000; sleep 30']);
    const id = queued.stdout.trim().split('\n').at(-1)!;
    const following = startCli(['job', 'logs', id, '--follow'], { server: server.address });
    await until(() => (following.output().stdout.length > 0 ? true : undefined));
    following.child.stdout!.destroy();
    const logs = await following.result;
    expect(logs.code).toBe(0);
    expect(logs.stderr).not.toMatch(/EPIPE|node:events|Error:/);
    await cli(['job', 'cancel', id]);
  });

  it('exits 1 with a message when its output cannot be written (a full disk), not 0 with the output lost', async () => {
    const { spawn } = await import('node:child_process');
    const { openSync, closeSync } = await import('node:fs');
    const full = openSync('/dev/full', 'w');
    try {
      const child = spawn(process.execPath, [CLI, 'job', 'list', '--server', server.address], { stdio: ['ignore', full, 'pipe'] });
      let stderr = '';
      child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
      const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
      expect(code).toBe(1);
      expect(stderr).toMatch(/^hodei: could not write the output: /m);
      expect(stderr).not.toMatch(/node:events|\n\s+at /);
    } finally {
      closeSync(full);
    }
  });

  it('takes the server from --server as well as HODEI_SERVER', async () => {
    const run = await runCli(['job', 'list', '--server', server.address, '--limit', '1'], { env: { HODEI_SERVER: undefined } });
    expect(run.code).toBe(0);
    const before = await runCli(['job', '--server', server.address, 'list', '--json'], { env: { HODEI_SERVER: undefined } });
    expect(before.code).toBe(0);
  });

  it('lists workers as JSON and as a table', async () => {
    const json = await cli(['worker', 'list', '--json']);
    expect(json.code).toBe(0);
    const workers = JSON.parse(json.stdout) as { id: string; state: string; provider: string }[];
    expect(workers.length).toBeGreaterThan(0);
    expect(workers.length).toBeLessThanOrEqual(4);
    for (const worker of workers) expect(worker).toMatchObject({ provider: 'process', state: expect.any(String), id: expect.any(String) });
    if (CAN_SEE_PROCESSES) expect(server.workerPids().length).toBeGreaterThan(0);
    const table = await cli(['worker', 'list']);
    expect(table.stdout.split('\n')[0]).toMatch(/^ID\s+PROVIDER\s+STATE/);
  });
});
