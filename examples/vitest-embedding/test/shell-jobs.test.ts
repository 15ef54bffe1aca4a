// A real Hodei server on a free port, real worker processes, real shell jobs: three lines of setup.
import { afterAll, expect, test } from 'vitest';
import { createTestPlatform } from '@hodei/testing';

const hodei = await createTestPlatform({ afterAll });

test('a pipeline prints what we expect', async () => {
  const { job, stdout } = await hodei.run("echo 'test' | grep 'test'");
  expect(job.state).toBe('SUCCEEDED');
  expect(stdout).toEqual(['test']);
});

test('stdout and stderr come back separately', async () => {
  const { stdout, stderr } = await hodei.run('echo out; echo err >&2');
  expect(stdout).toEqual(['out']);
  expect(stderr).toEqual(['err']);
});

test('a failing command fails the job with its exit code', async () => {
  const { job } = await hodei.run({ name: 'exit 7', command: 'exit 7' });
  expect(job.state).toBe('FAILED');
  expect(job.exitCode).toBe(7);
});

test('env and timeouts are part of the spec', async () => {
  const { job, stdout } = await hodei.run({ name: 'greet', command: 'echo "hello $WHO"', env: { WHO: 'vitest' }, timeoutMs: 10_000 });
  expect(job.state).toBe('SUCCEEDED');
  expect(stdout).toEqual(['hello vitest']);
});

test('a job over its timeout is TIMED_OUT', async () => {
  const { job } = await hodei.run({ name: 'slow', command: 'sleep 30', timeoutMs: 500 });
  expect(job.state).toBe('TIMED_OUT');
});
