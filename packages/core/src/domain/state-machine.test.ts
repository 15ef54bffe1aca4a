import { describe, expect, it } from 'vitest';
import { HodeiError } from './errors';
import { JOB_STATES, JOB_TRANSITIONS, TERMINAL_JOB_STATES, type JobState } from './job';
import { assertTransition, canTransition } from './state-machine';
import { WORKER_STATES, WORKER_TRANSITIONS, type WorkerState } from './worker';

const LEGAL_JOB: [JobState, JobState][] = [
  ['QUEUED', 'ASSIGNED'],
  ['QUEUED', 'CANCELLED'],
  ['QUEUED', 'FAILED'],
  ['ASSIGNED', 'RUNNING'],
  ['ASSIGNED', 'QUEUED'],
  ['ASSIGNED', 'SUCCEEDED'],
  ['ASSIGNED', 'FAILED'],
  ['ASSIGNED', 'TIMED_OUT'],
  ['ASSIGNED', 'CANCELLED'],
  ['RUNNING', 'SUCCEEDED'],
  ['RUNNING', 'FAILED'],
  ['RUNNING', 'TIMED_OUT'],
  ['RUNNING', 'CANCELLED'],
  ['RUNNING', 'QUEUED'],
];

const LEGAL_WORKER: [WorkerState, WorkerState][] = [
  ['CREATING', 'CONNECTING'],
  ['CREATING', 'TERMINATING'],
  ['CREATING', 'TERMINATED'],
  ['CREATING', 'LOST'],
  ['CONNECTING', 'READY'],
  ['CONNECTING', 'TERMINATING'],
  ['CONNECTING', 'TERMINATED'],
  ['CONNECTING', 'LOST'],
  ['READY', 'BUSY'],
  ['READY', 'DRAINING'],
  ['READY', 'TERMINATING'],
  ['READY', 'LOST'],
  ['BUSY', 'READY'],
  ['BUSY', 'DRAINING'],
  ['BUSY', 'TERMINATING'],
  ['BUSY', 'LOST'],
  ['DRAINING', 'TERMINATING'],
  ['DRAINING', 'TERMINATED'],
  ['DRAINING', 'LOST'],
  ['TERMINATING', 'TERMINATED'],
  ['TERMINATING', 'LOST'],
  ['LOST', 'TERMINATED'],
];

function everyPair<S extends string>(states: readonly S[]): [S, S][] {
  return states.flatMap((from) => states.map((to): [S, S] => [from, to]));
}

describe('job state machine', () => {
  const legal = new Set(LEGAL_JOB.map(([from, to]) => `${from}>${to}`));
  it.each(everyPair(JOB_STATES))('%s -> %s is legal exactly when listed', (from, to) => {
    const expected = legal.has(`${from}>${to}`);
    expect(canTransition(JOB_TRANSITIONS, from, to)).toBe(expected);
    if (expected) expect(() => assertTransition(JOB_TRANSITIONS, 'job', from, to)).not.toThrow();
    else {
      const error = (() => {
        try {
          assertTransition(JOB_TRANSITIONS, 'job', from, to);
        } catch (caught) {
          return caught;
        }
      })();
      expect(HodeiError.isInstance(error) && error.code).toBe('ILLEGAL_TRANSITION');
    }
  });

  it('terminal states have no way out', () => {
    for (const state of TERMINAL_JOB_STATES) expect(JOB_TRANSITIONS[state]).toEqual([]);
  });
});

describe('worker state machine', () => {
  const legal = new Set(LEGAL_WORKER.map(([from, to]) => `${from}>${to}`));
  it.each(everyPair(WORKER_STATES))('%s -> %s is legal exactly when listed', (from, to) => {
    expect(canTransition(WORKER_TRANSITIONS, from, to)).toBe(legal.has(`${from}>${to}`));
  });

  it('refuses an illegal transition with a typed error', () => {
    expect(() => assertTransition(WORKER_TRANSITIONS, 'worker w-1', 'TERMINATED', 'READY')).toThrowError(
      expect.objectContaining({ code: 'ILLEGAL_TRANSITION', message: 'worker w-1 cannot go from TERMINATED to READY' }),
    );
  });
});
