import { describe, expect, it } from 'vitest';
import { parseDuration } from './duration';
import { DEFAULT_JOB_TIMEOUT_MS, redactJobSpec, validateJobSpec } from './job-spec';
import { createSecretFinder, createSecretMasker } from '../protocol/secrets';

function fieldOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    expect((error as { code: string }).code).toBe('INVALID_ARGUMENT');
    return (error as { field: string }).field;
  }
  return undefined;
}

describe('validateJobSpec', () => {
  it('fills defaults', () => {
    const spec = validateJobSpec({ name: 'a', command: 'echo hi' });
    expect(spec).toEqual({
      name: 'a',
      command: 'echo hi',
      args: [],
      env: {},
      secretEnv: [],
      labels: {},
      timeoutMs: DEFAULT_JOB_TIMEOUT_MS,
      maxAttempts: 1,
      priority: 0,
    });
  });

  it('accepts a script with the default interpreter', () => {
    expect(validateJobSpec({ name: 's', script: { content: 'echo 1' } }).script).toEqual({
      interpreter: '/bin/bash',
      content: 'echo 1',
    });
  });

  it.each([
    [{ name: '', command: 'x' }, 'spec.name'],
    [{ name: 'a', command: '' }, 'spec.command'],
    [{ name: 'a', command: '   ' }, 'spec.command'],
    [{ name: 'a' }, 'spec'],
    [{ name: 'a', command: 'x', script: { content: 'y' } }, 'spec'],
    [{ name: 'a', command: 'x', timeoutMs: -5 }, 'spec.timeoutMs'],
    [{ name: 'a', command: 'x', timeoutMs: 1.5 }, 'spec.timeoutMs'],
    [{ name: 'a', command: 'x', env: { 'BAD-NAME': 'v' } }, 'spec.env.BAD-NAME'],
    [{ name: 'a', command: 'x', env: { A: 1 } }, 'spec.env.A'],
    [{ name: 'a', command: 'x', maxAttempts: 1000 }, 'spec.maxAttempts'],
    [{ name: 'a', command: 'x', args: ['ok', 3] }, 'spec.args'],
    [{ name: 'a', command: 'cat <<EOF\nhi\nEOF\n', args: ['/tmp'] }, 'spec.args'],
    [{ name: 'a', command: 'x', retryOnExitCodes: [0] }, 'spec.retryOnExitCodes'],
    [{ name: 'a', command: 'x', retryOnExitCodes: [1.5] }, 'spec.retryOnExitCodes'],
    [{ name: 'a', command: 'x', retryOnExitCodes: 3 }, 'spec.retryOnExitCodes'],
    [{ name: 'a', command: 'x'.repeat(1024 * 1024 + 1) }, 'spec'],
    [{ name: 'a', script: { content: '' } }, 'spec.script.content'],
    [null, 'spec'],
    [{ name: 'a', command: 'x', secretEnv: ['MISSING'] }, 'spec.secretEnv.MISSING'],
    [{ name: 'a', command: 'x', env: { PIN: '1234' }, secretEnv: ['PIN'] }, 'spec.secretEnv.PIN'],
  ])('rejects %# naming %s', (input, field) => {
    expect(fieldOf(() => validateJobSpec(input))).toBe(field);
  });
});

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['90s', 90_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['1.5s', 1_500],
    ['250', 250],
  ])('%s = %d ms', (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each(['-5s', 'abc', '5 parsecs', ''])('rejects %j naming the field', (text) => {
    expect(fieldOf(() => parseDuration(text, '--timeout'))).toBe('--timeout');
  });
});

describe('secrets', () => {
  const spec = validateJobSpec({
    name: 's',
    command: 'true',
    env: { DEPLOY: 'hunter2hunter2', API_TOKEN: 'tok-123456789', SHORT_KEY: 'abc', PLAIN: 'visible' },
    secretEnv: ['DEPLOY'],
  });

  it('redacts listed and pattern-named env values for clients, and only those', () => {
    expect(redactJobSpec(spec).env).toEqual({ DEPLOY: '***', API_TOKEN: '***', SHORT_KEY: '***', PLAIN: 'visible' });
    expect(spec.env.DEPLOY).toBe('hunter2hunter2');
  });

  it('masks every occurrence in a line, longest first, and leaves short values alone', () => {
    const mask = createSecretMasker(spec.env, spec.secretEnv);
    expect(mask('a hunter2hunter2 b tok-123456789 hunter2hunter2 abc')).toBe('a *** b *** *** abc');
    expect(createSecretMasker({ A_TOKEN: 'aaaaaaaa', B_TOKEN: 'aaaaaaaabbbb' }, [])('xaaaaaaaabbbbx')).toBe('x***x');
  });

  it('masks each line of a multi-line secret', () => {
    const mask = createSecretMasker({ CERT_SECRET: 'line-one-1234\nline-two-5678' }, []);
    expect([mask('line-one-1234'), mask('line-two-5678')]).toEqual(['***', '***']);
  });

  it('finds where the masker masks: the same matches, longest first, and none without secrets', () => {
    const find = createSecretFinder({ A_TOKEN: 'aaaaaaaa', B_TOKEN: 'aaaaaaaabbbb' }, []);
    expect(find('xaaaaaaaabbbbx aaaaaaaa')).toEqual([
      [1, 13],
      [15, 23],
    ]);
    expect(createSecretFinder({ PLAIN: 'aaaaaaaa' }, [])('aaaaaaaa')).toEqual([]);
  });
});

describe('retryOnExitCodes', () => {
  it('keeps the listed codes, without duplicates, and is absent when not given', () => {
    expect(validateJobSpec({ name: 'a', command: 'x', retryOnExitCodes: [3, 3, 75] }).retryOnExitCodes).toEqual([3, 75]);
    expect(validateJobSpec({ name: 'a', command: 'x' }).retryOnExitCodes).toBeUndefined();
  });
});
