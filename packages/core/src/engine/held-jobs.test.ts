import { describe, expect, it } from 'vitest';
import type { Job } from '../domain/job';
import { heldJobsThatMayHaveStarted } from './held-jobs';

const spec = { name: 'j', command: 'true', args: [], env: {}, secretEnv: [], timeoutMs: 1_000, labels: {}, maxAttempts: 3, priority: 0 };

function held(...states: Job['state'][]): Job[] {
  return states.map((state, index) => ({ id: `j${index + 1}`, spec, state, attempt: 1, epoch: 1, createdAt: 0, workerId: 'w1' }));
}

const ids = (set: Set<string>) => [...set].sort();

describe('heldJobsThatMayHaveStarted', () => {
  it('counts the first `slots` jobs sent, whether or not their start was reported', () => {
    expect(ids(heldJobsThatMayHaveStarted(held('ASSIGNED', 'ASSIGNED', 'ASSIGNED', 'ASSIGNED'), 2))).toEqual(['j1', 'j2']);
  });

  it('counts every RUNNING job and the jobs sent before it (a worker starts them in the order they came)', () => {
    expect(ids(heldJobsThatMayHaveStarted(held('ASSIGNED', 'ASSIGNED', 'RUNNING', 'ASSIGNED'), 1))).toEqual(['j1', 'j2', 'j3']);
  });

  it('counts every job when the slots are unknown, or when the worker holds no more than its slots', () => {
    expect(ids(heldJobsThatMayHaveStarted(held('ASSIGNED', 'ASSIGNED', 'ASSIGNED'), undefined))).toEqual(['j1', 'j2', 'j3']);
    expect(ids(heldJobsThatMayHaveStarted(held('ASSIGNED', 'RUNNING'), 2))).toEqual(['j1', 'j2']);
  });
});
