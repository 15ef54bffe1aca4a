import { describe, expect, it } from 'vitest';
import type { Job } from '../domain/job';
import type { Worker } from '../domain/worker';
import { strandedAssignments } from './stranded-assignments';

const spec = { name: 'j', command: 'true', args: [], env: {}, secretEnv: [], timeoutMs: 1_000, labels: {}, maxAttempts: 1, priority: 0 };

function job(id: string, workerId: string | undefined, state: Job['state'] = 'ASSIGNED'): Job {
  return { id, spec, state, attempt: 1, epoch: 1, createdAt: 0, ...(workerId ? { workerId } : {}) };
}

function worker(id: string, state: Worker['state'], runningJobIds: string[]): Worker {
  return { id, provider: 'p', state, capacity: 4, runningJobIds, labels: {}, createdAt: 0 };
}

describe('strandedAssignments', () => {
  it('finds a job assigned to an own worker that does not list it', () => {
    const jobs = [job('listed', 'w1'), job('missing', 'w1')];
    expect(strandedAssignments(jobs, [worker('w1', 'BUSY', ['listed'])], new Set(['w1'])).map((j) => j.id)).toEqual(['missing']);
  });

  it("leaves another engine's live worker's assignments to that engine", () => {
    expect(strandedAssignments([job('theirs', 'w2')], [worker('w2', 'READY', [])], new Set(['w1']))).toEqual([]);
  });

  it('finds jobs whose worker is gone, unknown or no longer live, whoever owned it', () => {
    const jobs = [job('lost', 'w2'), job('terminated', 'w3'), job('unknown', 'w9'), job('alive', 'w4')];
    const workers = [worker('w2', 'LOST', []), worker('w3', 'TERMINATED', []), worker('w4', 'BUSY', ['alive'])];
    expect(strandedAssignments(jobs, workers, new Set()).map((j) => j.id)).toEqual(['lost', 'terminated', 'unknown']);
  });

  it('ignores jobs that are not ASSIGNED', () => {
    expect(strandedAssignments([job('running', 'w1', 'RUNNING'), job('queued', undefined, 'QUEUED')], [], new Set(['w1']))).toEqual([]);
  });
});
