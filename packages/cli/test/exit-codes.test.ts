import { HodeiError } from '@hodei/core';
import { describe, expect, it } from 'vitest';
import { EXIT, exitCodeForError, exitCodeForJob } from '../src/exit-codes';

describe('exitCodeForJob', () => {
  it('is 0 for a job that succeeded', () => {
    expect(exitCodeForJob({ state: 'SUCCEEDED', exitCode: 0 })).toBe(0);
  });

  it("is the job's own exit code when it failed by exiting", () => {
    expect(exitCodeForJob({ state: 'FAILED', exitCode: 7, failureReason: 'EXIT_CODE' })).toBe(7);
    expect(exitCodeForJob({ state: 'FAILED', exitCode: 255 })).toBe(255);
  });

  it('is 124 for a timeout and 130 for a cancellation', () => {
    expect(exitCodeForJob({ state: 'TIMED_OUT' })).toBe(124);
    expect(exitCodeForJob({ state: 'CANCELLED', signal: 'SIGTERM' })).toBe(130);
  });

  it('is 128 + the signal number for a job killed by a signal', () => {
    expect(exitCodeForJob({ state: 'FAILED', signal: 'SIGKILL', failureReason: 'EXIT_CODE' })).toBe(137);
  });

  it('is 1 for a failure that is not the command exiting', () => {
    expect(exitCodeForJob({ state: 'FAILED', failureReason: 'WORKER_LOST' })).toBe(1);
    expect(exitCodeForJob({ state: 'FAILED', failureReason: 'FAILED_TO_START', exitCode: 127 })).toBe(1);
    expect(exitCodeForJob({ state: 'FAILED', exitCode: 0 })).toBe(1);
    expect(exitCodeForJob({ state: 'RUNNING' })).toBe(1);
  });
});

describe('exitCodeForError', () => {
  it('is 2 for invalid input and unknown ids', () => {
    expect(exitCodeForError(new HodeiError('INVALID_ARGUMENT', 'x'))).toBe(EXIT.USAGE);
    expect(exitCodeForError(new HodeiError('NOT_FOUND', 'x'))).toBe(2);
    expect(exitCodeForError(new HodeiError('ILLEGAL_TRANSITION', 'x'))).toBe(2);
  });

  it('is 1 for an unreachable server and anything unexpected', () => {
    expect(exitCodeForError(new HodeiError('UNAVAILABLE', 'x'))).toBe(EXIT.FAILURE);
    expect(exitCodeForError(new HodeiError('INTERNAL', 'x'))).toBe(1);
    expect(exitCodeForError(new Error('boom'))).toBe(1);
    expect(exitCodeForError('boom')).toBe(1);
  });
});
