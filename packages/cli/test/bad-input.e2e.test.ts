import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli';
import { startServer, type TestServer } from './helpers/server';

let server: TestServer;
const cli = (args: string[]) => runCli(args, { server: server.address });

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

beforeAll(async () => {
  server = await startServer();
});

afterAll(async () => {
  if (!server) return;
  const { result, leftover } = await server.stop();
  expect(result.code).toBe(0);
  expect(leftover).toEqual([]);
});

const noStackTrace = /\n\s+at |^\s+at /m;

describe('bad input exits 2 with one line naming the field', () => {
  const cases: [string, string[], RegExp][] = [
    ['empty command after --', ['job', 'run', '--', ''], /^hodei: --command: must not be empty$/],
    ['blank --command', ['job', 'queue', '--command', '   '], /^hodei: --command: must not be empty$/],
    ['no command at all', ['job', 'run', '--name', 'x'], /^hodei: --command: /],
    ['negative --timeout', ['job', 'run', '--timeout', '-5s', '--', 'echo'], /^hodei: --timeout: "-5s" is not a duration/],
    ['malformed --timeout', ['job', 'queue', '--timeout=5x', '--command', 'echo'], /^hodei: --timeout: "5x" is not a duration/],
    ['zero --timeout', ['job', 'run', '--timeout', '0s', '--', 'echo'], /^hodei: --timeout: "0s" must be more than zero$/],
    ['--env without =', ['job', 'run', '--env', 'FOO', '--', 'echo'], /^hodei: --env: "FOO" is not KEY=VALUE$/],
    ['--env with a bad name', ['job', 'run', '--env', '1X=y', '--', 'echo'], /^hodei: --env: "1X" is not a valid variable name/],
    ['--max-attempts 0', ['job', 'run', '--max-attempts', '0', '--', 'echo'], /^hodei: --max-attempts: /],
    ['missing --script file', ['job', 'run', '--script', '/nonexistent/x.sh'], /^hodei: --script: cannot read/],
    ['unknown --state', ['job', 'list', '--state', 'DONE'], /^hodei: --state: "DONE" is not a job state; accepted values: QUEUED/],
    ['malformed --server', ['job', 'list', '--server', 'not-an-address'], /^hodei: --server: "not-an-address" is not host:port/],
    ['unknown job id for get', ['job', 'get', 'job-does-not-exist'], /^hodei: .*job-does-not-exist/],
    ['unknown job id for logs', ['job', 'logs', 'job-does-not-exist'], /^hodei: .*job-does-not-exist/],
    ['unknown job id for cancel', ['job', 'cancel', 'job-does-not-exist'], /^hodei: .*job-does-not-exist/],
    ['unknown option', ['job', 'run', '--bogus', '--', 'echo'], /^hodei: unknown option '--bogus'/],
    ['unknown --store', ['server', '--store', 'redis'], /^hodei: --store: "redis" is not supported; accepted values: memory, postgres$/],
    ['unknown --provider', ['server', '--provider', 'k8s'], /^hodei: --provider: "k8s" is not supported; accepted values: process, docker$/],
    ['docker without image', ['server', '--provider', 'docker'], /^hodei: --docker-image: is required with --provider docker/],
    ['bad --worker-memory', ['server', '--provider', 'docker', '--docker-image', 'x', '--worker-memory', 'lots'], /^hodei: --worker-memory: /],
    ['bad --log-level', ['server', '--log-level', 'loud'], /^hodei: --log-level: "loud" is not supported; accepted values: trace, debug/],
    ['--port out of range', ['server', '--port', '70000'], /^hodei: --port: must be between 0 and 65535/],
    ['bad --idle-timeout', ['server', '--idle-timeout', 'soon'], /^hodei: --idle-timeout: "soon" is not a duration/],
    ['negative --prefetch', ['server', '--prefetch', '-1'], /^hodei: --prefetch: must be between 0 and 100000, got -1/],
    ['bad --drain-grace', ['server', '--drain-grace', 'a while'], /^hodei: --drain-grace: "a while" is not a duration/],
    ['missing --tls-cert file', ['server', '--tls-cert', '/nonexistent/cert.pem', '--tls-key', '/nonexistent/key.pem'], /^hodei: --tls-cert: cannot read \/nonexistent\/cert.pem: no such file/],
    ['--tls-cert without --tls-key', ['server', '--tls-cert', '/nonexistent/cert.pem'], /^hodei: --tls-key: is required with --tls-cert/],
    ['missing --tls-ca file', ['job', 'list', '--tls-ca', '/nonexistent/ca.pem'], /^hodei: --tls-ca: cannot read \/nonexistent\/ca.pem: no such file/],
    ['a --tls-ca that is no certificate', ['job', 'list', '--tls-ca', 'package.json'], /^hodei: --tls-ca: package.json is not a PEM certificate/],
    ['bad --retention', ['server', '--retention', 'forever'], /^hodei: --retention: "forever" is not a duration/],
    ['--database-url without --store postgres', ['server', '--database-url', 'postgres://u:p@127.0.0.1:1/db'], /^hodei: --database-url: needs --store postgres/],
    ['--worker-label without =', ['server', '--worker-label', 'gpu'], /^hodei: --worker-label: "gpu" is not KEY=VALUE$/],
    ['a Docker flag without --provider docker', ['server', '--worker-memory', '512m'], /^hodei: --worker-memory: needs --provider docker/],
  ];

  it('an unreachable Docker engine is a clear error at start, exit 2', async () => {
    const result = await runCli(['server', '--provider', 'docker', '--docker-image', 'hodei-worker:local'], {
      env: { DOCKER_HOST: 'unix:///nonexistent/docker.sock' },
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^hodei: --provider docker: cannot reach the Docker engine at unix:\/\/\/nonexistent\/docker.sock/);
  });

  it.concurrent.each(cases)('%s', async (_, args, message) => {
    const result = await cli(args);
    expect(result.code).toBe(2);
    const firstLine = result.stderr.split('\n')[0]!;
    expect(firstLine).toMatch(message);
    expect(result.stderr).not.toMatch(noStackTrace);
    expect(result.stdout).toBe('');
  });

  it('refuses a port in use, naming --port', async () => {
    const port = server.address.split(':')[1]!;
    const result = await cli(['server', '--port', port]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(new RegExp(`^hodei: --port: 127\\.0\\.0\\.1:${port} is already in use`));
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });
});

describe('other failures', () => {
  it('exits 1 with one line when the server is unreachable', async () => {
    const address = `127.0.0.1:${await freePort()}`;
    const result = await runCli(['job', 'list'], { server: address });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(new RegExp(`^hodei: cannot reach the Hodei server at ${address.replace(/\./g, '\\.')}`));
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('prints help with an example and exits 0', async () => {
    for (const args of [['--help'], ['server', '--help'], ['job', 'run', '--help'], ['job', 'queue', '--help'], ['job', 'logs', '--help'], ['job', 'get', '--help'], ['job', 'list', '--help'], ['job', 'cancel', '--help'], ['worker', 'list', '--help']]) {
      const result = await runCli(args);
      expect(result.code, args.join(' ')).toBe(0);
      expect(result.stdout, args.join(' ')).toMatch(/Examples?:\n\s+\$ hodei /);
    }
  });

  it('still serves a good job afterwards', async () => {
    const run = await cli(['job', 'run', '--name', 'after bad input', '--', "echo 'test' | grep 'test'"]);
    expect(run.stdout).toBe('test\n');
    expect(run.code).toBe(0);
  });
});
