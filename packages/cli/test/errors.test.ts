import { HodeiError, invalidArgument, parseDuration } from '@hodei/core';
import { describe, expect, it } from 'vitest';
import { flagForField, formatError } from '../src/errors';

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('did not throw');
}

describe('formatError', () => {
  it('prints a duration error with the flag it came from', () => {
    expect(formatError(thrown(() => parseDuration('-5s', '--timeout')))).toBe(
      'hodei: --timeout: "-5s" is not a duration; use a number with a unit, e.g. 500ms, 90s, 5m, 1h',
    );
  });

  it('names the CLI flag for a job spec field', () => {
    expect(formatError(invalidArgument('spec.timeoutMs', 'must be positive'))).toBe('hodei: --timeout: must be positive');
    expect(formatError(invalidArgument('spec.env.1X', 'is not a valid variable name'))).toBe(
      'hodei: --env 1X: is not a valid variable name',
    );
    expect(formatError(invalidArgument('address', '"x" is not host:port'))).toBe('hodei: --server: "x" is not host:port');
  });

  it('prefixes the flag when the message does not start with the field', () => {
    expect(formatError(new HodeiError('INVALID_ARGUMENT', 'address in use', { field: '--port' }))).toBe(
      'hodei: --port: address in use',
    );
  });

  it('keeps messages without a field, on one line', () => {
    expect(formatError(new HodeiError('NOT_FOUND', 'no job with id "x"'))).toBe('hodei: no job with id "x"');
    expect(formatError(new HodeiError('INTERNAL', 'two\n  lines'))).toBe('hodei: two lines');
  });

  it('shortens an unreachable-server message and says what to check', () => {
    const message = formatError(
      new HodeiError(
        'UNAVAILABLE',
        'cannot reach the Hodei server at 127.0.0.1:1: No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: ',
      ),
    );
    expect(message).toBe(
      'hodei: cannot reach the Hodei server at 127.0.0.1:1: connect ECONNREFUSED 127.0.0.1:1 (is "hodei server" running? set --server or HODEI_SERVER)',
    );
  });

  it('never includes a stack trace', () => {
    const error = new HodeiError('INTERNAL', 'boom');
    expect(formatError(error)).not.toContain(' at ');
    expect(formatError(new Error('plain'))).toBe('hodei: unexpected error: plain');
  });
});

describe('flagForField', () => {
  it('maps core fields to flags and leaves others alone', () => {
    expect(flagForField('spec.maxAttempts')).toBe('--max-attempts');
    expect(flagForField('spec.labels.zone')).toBe('--label zone');
    expect(flagForField('--state')).toBe('--state');
  });
});
