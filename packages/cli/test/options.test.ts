import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HodeiError } from '@hodei/core';
import { describe, expect, it } from 'vitest';
import { buildJobSpec } from '../src/job-spec-options';
import { parseKeyValues, parseStates, resolveServerAddress } from '../src/options';
import { formatTable } from '../src/table';
import { resolveDatabaseUrl } from '../src/commands/server';

function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    if (HodeiError.isInstance(error)) return error.field;
    throw error;
  }
  throw new Error('did not throw');
}

describe('buildJobSpec', () => {
  it('takes one quoted command after -- verbatim and names the job after it', () => {
    expect(buildJobSpec({}, ["echo 'test' | grep 'test'"])).toEqual({ name: "echo 'test' | grep 'test'", command: "echo 'test' | grep 'test'" });
  });

  it('takes a program and its arguments after --', () => {
    expect(buildJobSpec({ name: 'p' }, ['printf', '%s\n', 'a b'])).toEqual({ name: 'p', command: 'printf', args: ['%s\n', 'a b'] });
  });

  it('defaults the name to the first 40 characters of the command', () => {
    const spec = buildJobSpec({ command: `echo ${'x'.repeat(60)}` }, []);
    expect(spec.name).toHaveLength(40);
  });

  it('parses the other flags', () => {
    expect(
      buildJobSpec(
        { command: 'env', env: ['A=1', 'B=x=y'], label: ['zone=eu'], timeout: '90s', workdir: '/tmp', maxAttempts: '3', priority: '-2' },
        [],
      ),
    ).toEqual({
      name: 'env',
      command: 'env',
      env: { A: '1', B: 'x=y' },
      labels: { zone: 'eu' },
      timeoutMs: 90_000,
      workingDir: '/tmp',
      maxAttempts: 3,
      priority: -2,
    });
  });

  it('reads a script file', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'hodei-cli-')), 'job.sh');
    writeFileSync(file, 'echo from script\n');
    expect(buildJobSpec({ script: file, interpreter: '/bin/sh' }, [])).toEqual({
      name: 'job.sh',
      script: { content: 'echo from script\n', interpreter: '/bin/sh' },
    });
  });

  it('names the flag for bad input', () => {
    expect(fieldOf(() => buildJobSpec({}, []))).toBe('--command');
    expect(fieldOf(() => buildJobSpec({}, ['  ']))).toBe('--command');
    expect(fieldOf(() => buildJobSpec({ command: 'a' }, ['b']))).toBe('--command');
    expect(fieldOf(() => buildJobSpec({ command: 'a', timeout: '-5s' }, []))).toBe('--timeout');
    expect(fieldOf(() => buildJobSpec({ command: 'a', timeout: '0s' }, []))).toBe('--timeout');
    expect(fieldOf(() => buildJobSpec({ command: 'a', timeout: '30d' }, []))).toBe('spec.timeoutMs');
    expect(fieldOf(() => buildJobSpec({ command: 'a', env: ['NOEQUALS'] }, []))).toBe('--env');
    expect(fieldOf(() => buildJobSpec({ command: 'a', env: ['1X=y'] }, []))).toBe('--env');
    expect(fieldOf(() => buildJobSpec({ command: 'a', maxAttempts: '0' }, []))).toBe('--max-attempts');
    expect(fieldOf(() => buildJobSpec({ command: 'a', name: ' ' }, []))).toBe('--name');
    expect(fieldOf(() => buildJobSpec({ script: '/nonexistent/job.sh' }, []))).toBe('--script');
    expect(fieldOf(() => buildJobSpec({ command: 'a', interpreter: 'sh' }, []))).toBe('--interpreter');
  });
});

describe('option parsers', () => {
  it('resolves the server address from the flag, then HODEI_SERVER, then the default', () => {
    expect(resolveServerAddress('h:1', { HODEI_SERVER: 'e:2' })).toBe('h:1');
    expect(resolveServerAddress(undefined, { HODEI_SERVER: 'e:2' })).toBe('e:2');
    expect(resolveServerAddress(undefined, {})).toBe('127.0.0.1:50051');
    expect(fieldOf(() => resolveServerAddress('nope', {}))).toBe('--server');
    expect(fieldOf(() => resolveServerAddress(undefined, { HODEI_SERVER: 'http://x' }))).toBe('HODEI_SERVER');
  });

  it('parses K=V pairs and states', () => {
    expect(parseKeyValues(['a=', 'b=c'], '--label', 'label')).toEqual({ a: '', b: 'c' });
    expect(fieldOf(() => parseKeyValues(['=v'], '--label', 'label'))).toBe('--label');
    expect(parseStates(['running', 'QUEUED,succeeded'])).toEqual(['RUNNING', 'QUEUED', 'SUCCEEDED']);
    expect(fieldOf(() => parseStates(['done']))).toBe('--state');
  });

  it('formats compact aligned tables', () => {
    expect(formatTable(['ID', 'STATE'], [['a', 'RUNNING'], ['long-id', 'QUEUED']])).toBe('ID       STATE\na        RUNNING\nlong-id  QUEUED\n');
  });
});

describe('resolveDatabaseUrl', () => {
  const io = (env: Record<string, string | undefined>) => ({ stdout: { write: () => true }, stderr: { write: () => true }, env, onSignal: () => () => undefined });

  it('takes the flag, else HODEI_DATABASE_URL, else DATABASE_URL; a variable set but blank counts as unset', () => {
    expect(resolveDatabaseUrl('postgres://flag', io({ HODEI_DATABASE_URL: 'postgres://hodei' }))).toBe('postgres://flag');
    expect(resolveDatabaseUrl(undefined, io({ HODEI_DATABASE_URL: 'postgres://hodei', DATABASE_URL: 'postgres://other' }))).toBe('postgres://hodei');
    expect(resolveDatabaseUrl(undefined, io({ HODEI_DATABASE_URL: '', DATABASE_URL: 'postgres://other' }))).toBe('postgres://other');
    expect(() => resolveDatabaseUrl(undefined, io({ HODEI_DATABASE_URL: ' ' }))).toThrow(expect.objectContaining({ field: '--database-url' }));
  });
});
