import { describe, expect, it } from 'vitest';
import type { Job } from '../domain/job';
import type { Worker } from '../domain/worker';
import { decide, nextBackoffEnd, plan, queueDemandBound, withReportedResultsFreed, type ProviderSlot, type SchedulerSnapshot } from './scheduler';

const NOW = 1_000_000;

function job(id: string, labels: Record<string, string> = {}, overrides: Partial<Job> = {}): Job {
  return {
    id,
    state: 'QUEUED',
    attempt: 1,
    epoch: 0,
    createdAt: NOW - 10,
    spec: { name: id, command: 'true', args: [], env: {}, secretEnv: [], labels, timeoutMs: 1000, maxAttempts: 1, priority: 0 },
    ...overrides,
  };
}

/** A re-queued job (attempt 2) that may not run before `notBefore`. */
const requeued = (id: string, notBefore: number): Job => job(id, {}, { attempt: 2, notBefore });

function worker(id: string, overrides: Partial<Worker> = {}): Worker {
  return {
    id,
    provider: 'process',
    state: 'READY',
    capacity: 1,
    runningJobIds: [],
    labels: {},
    createdAt: NOW - 5_000,
    lastHeartbeat: NOW - 100,
    idleSince: NOW - 100,
    ...overrides,
  };
}

function snapshot(overrides: Partial<SchedulerSnapshot>): SchedulerSnapshot {
  return {
    now: NOW,
    queuedJobs: [],
    workers: [],
    providers: [{ name: 'process', maxWorkers: 4, workerCapacity: 1, labels: {} }],
    heartbeatTimeoutMs: 60_000,
    idleTimeoutMs: 300_000,
    provisioningTimeoutMs: 120_000,
    ...overrides,
  };
}

const ofType = (type: string, decisions: ReturnType<typeof decide>) => decisions.filter((d) => d.type === type);

describe('decide', () => {
  it('assigns a queued job to an available worker', () => {
    expect(decide(snapshot({ queuedJobs: [job('j1')], workers: [worker('w1')] }))).toEqual([
      { type: 'assign', jobId: 'j1', workerId: 'w1' },
    ]);
  });

  it('provisions one worker per job that has none, never more than maxWorkers', () => {
    const jobs = Array.from({ length: 10 }, (_, index) => job(`j${index}`));
    const decisions = decide(snapshot({ queuedJobs: jobs }));
    expect(ofType('provision', decisions)).toHaveLength(4);
    expect(ofType('wait', decisions)).toHaveLength(6);
  });

  it('counts workers already being provisioned against the queue and the limit', () => {
    const pending = [worker('w1', { state: 'CREATING', lastHeartbeat: undefined }), worker('w2', { state: 'CONNECTING' })];
    const decisions = decide(snapshot({ queuedJobs: [job('j1'), job('j2'), job('j3')], workers: pending }));
    expect(ofType('provision', decisions)).toHaveLength(1);
    expect(ofType('wait', decisions)).toHaveLength(2);
  });

  it('provisions nothing when the queue is empty', () => {
    expect(decide(snapshot({ workers: [worker('w1')] }))).toEqual([]);
  });

  it('uses worker capacity: one worker of capacity 3 covers three jobs', () => {
    const providers = [{ name: 'process', maxWorkers: 4, workerCapacity: 3, labels: {} }];
    const decisions = decide(snapshot({ queuedJobs: [job('a'), job('b'), job('c'), job('d')], providers }));
    expect(ofType('provision', decisions)).toHaveLength(2);
  });

  it('never offers a job to a worker with a stale heartbeat, and marks it lost', () => {
    const stale = worker('w1', { lastHeartbeat: NOW - 61_000 });
    const decisions = decide(snapshot({ queuedJobs: [job('j1')], workers: [stale] }));
    expect(decisions).toContainEqual({ type: 'lost', workerId: 'w1', reason: 'heartbeat-timeout' });
    expect(ofType('assign', decisions)).toEqual([]);
    expect(ofType('provision', decisions)).toHaveLength(1);
  });

  it('respects labels for assignment and provisioning', () => {
    const providers: ProviderSlot[] = [
      { name: 'plain', maxWorkers: 2, workerCapacity: 1, labels: {} },
      { name: 'gpu', maxWorkers: 2, workerCapacity: 1, labels: { gpu: 'yes' } },
    ];
    const workers = [worker('w-plain', { provider: 'plain' })];
    const decisions = decide(snapshot({ queuedJobs: [job('j1', { gpu: 'yes' })], workers, providers }));
    expect(decisions).toEqual([{ type: 'provision', provider: 'gpu' }]);
  });

  it('waits with a reason when no provider offers the labels', () => {
    const decisions = decide(snapshot({ queuedJobs: [job('j1', { arch: 'arm' })] }));
    expect(decisions).toEqual([{ type: 'wait', jobId: 'j1', reason: 'no provider offers the labels this job asks for' }]);
  });

  it('does not assign to busy, connecting or full workers', () => {
    const workers = [
      worker('busy', { state: 'BUSY', runningJobIds: ['x'] }),
      worker('full', { capacity: 1, runningJobIds: ['y'] }),
      worker('draining', { state: 'DRAINING' }),
    ];
    const decisions = decide(snapshot({ queuedJobs: [job('j1')], workers }));
    expect(ofType('assign', decisions)).toEqual([]);
    expect(ofType('provision', decisions)).toHaveLength(1);
  });

  it('terminates a worker idle past the timeout but not one just assigned', () => {
    const idle = worker('idle', { idleSince: NOW - 300_000 });
    expect(decide(snapshot({ workers: [idle] }))).toEqual([{ type: 'terminate', workerId: 'idle', reason: 'idle' }]);
    expect(decide(snapshot({ workers: [idle], queuedJobs: [job('j1')] }))).toEqual([
      { type: 'assign', jobId: 'j1', workerId: 'idle' },
    ]);
  });

  it('reaps a worker that never registered within the provisioning timeout', () => {
    const stuck = worker('stuck', { state: 'CREATING', createdAt: NOW - 121_000, lastHeartbeat: undefined });
    expect(decide(snapshot({ workers: [stuck] }))).toEqual([
      { type: 'terminate', workerId: 'stuck', reason: 'provisioning-timeout' },
    ]);
  });

  it('skips a queued job whose retry backoff has not elapsed, and assigns it once it has', () => {
    const ready = worker('w1');
    const waiting = decide(snapshot({ workers: [ready], queuedJobs: [requeued('j1', NOW + 1)] }));
    expect(waiting).toEqual([{ type: 'wait', jobId: 'j1', reason: 'backing off before its next attempt' }]);
    expect(decide(snapshot({ workers: [], queuedJobs: [requeued('j1', NOW + 1)] }))).toEqual([
      { type: 'wait', jobId: 'j1', reason: 'backing off before its next attempt' },
    ]);
    expect(decide(snapshot({ workers: [ready], queuedJobs: [requeued('j1', NOW)] }))).toEqual([
      { type: 'assign', jobId: 'j1', workerId: 'w1' },
    ]);
    expect(decide(snapshot({ workers: [ready], queuedJobs: [requeued('j1', NOW - 5_000)] }))).toEqual([
      { type: 'assign', jobId: 'j1', workerId: 'w1' },
    ]);
  });

  it('gives the slot a backing-off job would take to the next job', () => {
    const ready = worker('w1');
    const decisions = decide(snapshot({ workers: [ready], queuedJobs: [requeued('j1', NOW + 500), job('j2')] }));
    expect(decisions).toContainEqual({ type: 'assign', jobId: 'j2', workerId: 'w1' });
    expect(decisions).not.toContainEqual(expect.objectContaining({ type: 'assign', jobId: 'j1' }));
  });

  it('provisions no worker for a job that is backing off', () => {
    expect(decide(snapshot({ queuedJobs: [requeued('j1', NOW + 500)] }))).toEqual([
      { type: 'wait', jobId: 'j1', reason: 'backing off before its next attempt' },
    ]);
  });
});

describe('plan: whether more of the queue could change the decisions', () => {
  const full: ProviderSlot[] = [{ name: 'process', maxWorkers: 1, workerCapacity: 2, labels: {} }];

  it('has no spare capacity once every slot is taken and no provider may start a worker', () => {
    const result = plan(snapshot({ workers: [worker('w1', { capacity: 2 })], providers: full, queuedJobs: [job('j1'), job('j2')] }));
    expect(ofType('assign', result.decisions)).toHaveLength(2);
    expect(result.spareCapacity).toBe(false);
  });

  it('has spare capacity while a worker has a free slot the jobs read did not suit', () => {
    const result = plan(snapshot({ workers: [worker('w1', { capacity: 2 })], providers: full, queuedJobs: [job('j1'), job('gpu', { gpu: 'yes' })] }));
    expect(ofType('assign', result.decisions)).toEqual([{ type: 'assign', jobId: 'j1', workerId: 'w1' }]);
    expect(result.spareCapacity).toBe(true);
  });

  it('has spare capacity while a provider may still start a worker', () => {
    const providers: ProviderSlot[] = [{ name: 'process', maxWorkers: 3, workerCapacity: 1, labels: {} }];
    expect(plan(snapshot({ providers, queuedJobs: [job('j1'), job('j2')] })).spareCapacity).toBe(true);
    expect(plan(snapshot({ providers, queuedJobs: [job('j1'), job('j2'), job('j3')] })).spareCapacity).toBe(false);
  });
});

describe('queueDemandBound', () => {
  it('counts the free slots of available workers, the slots of workers being started and of workers providers may start', () => {
    const workers = [
      worker('busy', { capacity: 2, runningJobIds: ['a', 'b'] }),
      worker('half', { capacity: 4, runningJobIds: ['c'] }),
      worker('starting', { state: 'CREATING', capacity: 2, lastHeartbeat: undefined }),
    ];
    const providers: ProviderSlot[] = [
      { name: 'process', maxWorkers: 5, workerCapacity: 2, labels: {} },
      { name: 'docker', maxWorkers: 2, workerCapacity: 8, labels: {} },
    ];
    // 3 free slots + 2 starting + (5 - 3 live) x 2 + 2 x 8.
    expect(queueDemandBound(snapshot({ workers, providers }))).toBe(3 + 2 + 4 + 16);
  });

  it('is 0 when every worker is busy and every provider is at its limit', () => {
    const providers: ProviderSlot[] = [{ name: 'process', maxWorkers: 1, workerCapacity: 1, labels: {} }];
    expect(queueDemandBound(snapshot({ workers: [worker('w1', { runningJobIds: ['a'] })], providers }))).toBe(0);
  });
});

describe('nextBackoffEnd', () => {
  it('is the earliest future notBefore among the queued jobs', () => {
    const jobs = [job('plain'), requeued('late', NOW + 900), requeued('due', NOW - 1), requeued('soon', NOW + 300)];
    expect(nextBackoffEnd(jobs, NOW)).toBe(NOW + 300);
  });

  it('is undefined when no queued job is backing off', () => {
    expect(nextBackoffEnd([], NOW)).toBeUndefined();
    expect(nextBackoffEnd([job('plain'), requeued('due', NOW), requeued('past', NOW - 10)], NOW)).toBeUndefined();
  });
});

describe('decide, with workers that hold jobs beyond their slots (prefetch)', () => {
  const slots = (entries: Record<string, number>) => new Map(Object.entries(entries));

  it("fills a worker's prefetch room only with jobs no slot or provider can take, and none while a worker is being started", () => {
    const providers = [{ name: 'process', maxWorkers: 2, workerCapacity: 1, labels: {} }];
    const queuedJobs = [job('j1'), job('j2'), job('j3'), job('j4')];
    const starting = decide(snapshot({ queuedJobs, workers: [worker('w1', { capacity: 3 })], workerSlots: slots({ w1: 1 }), providers }));
    expect(starting.map((d) => d.type)).toEqual(['assign', 'provision', 'wait', 'wait']);
    expect(starting[0]).toEqual({ type: 'assign', jobId: 'j1', workerId: 'w1' });
    const up = decide(
      snapshot({
        queuedJobs,
        workers: [worker('w1', { capacity: 3 }), worker('w2', { capacity: 3 })],
        workerSlots: slots({ w1: 1, w2: 1 }),
        providers,
      }),
    );
    expect(up).toEqual([
      { type: 'assign', jobId: 'j1', workerId: 'w1' },
      { type: 'assign', jobId: 'j2', workerId: 'w2' },
      { type: 'assign', jobId: 'j3', workerId: 'w1' },
      { type: 'assign', jobId: 'j4', workerId: 'w2' },
    ]);
  });

  it('spreads held jobs over the workers with the most room left', () => {
    const decisions = decide(
      snapshot({
        queuedJobs: [job('j1'), job('j2'), job('j3'), job('j4'), job('j5')],
        workers: [worker('w1', { capacity: 4, runningJobIds: ['r1'] }), worker('w2', { capacity: 4, runningJobIds: ['r2', 'r3'] })],
        workerSlots: slots({ w1: 1, w2: 1 }),
        providers: [],
      }),
    );
    expect(ofType('assign', decisions)).toEqual([
      { type: 'assign', jobId: 'j1', workerId: 'w1' },
      { type: 'assign', jobId: 'j2', workerId: 'w1' },
      { type: 'assign', jobId: 'j3', workerId: 'w2' },
      { type: 'assign', jobId: 'j4', workerId: 'w1' },
      { type: 'assign', jobId: 'j5', workerId: 'w2' },
    ]);
  });

  it('refills a worker whose slots are taken only once half its prefetch room is free', () => {
    const queued = [job('j1'), job('j2'), job('j3')];
    const holding = (held: number) => worker('w1', { capacity: 5, runningJobIds: Array.from({ length: held }, (_, index) => `r${index}`) });
    const at = (held: number) =>
      decide(snapshot({ queuedJobs: queued, workers: [holding(held)], workerSlots: slots({ w1: 1 }), providers: [] })).filter((d) => d.type === 'assign').length;
    expect(at(4)).toBe(0); // 1 of 4 prefetch places free
    expect(at(3)).toBe(2); // 2 of 4 free: refilled
    expect(queueDemandBound(snapshot({ workers: [holding(4)], workerSlots: slots({ w1: 1 }), providers: [] }))).toBe(0);
  });

  it('reports spare capacity while prefetch room is left', () => {
    const { spareCapacity } = plan(
      snapshot({ queuedJobs: [job('j1')], workers: [worker('w1', { capacity: 3 })], workerSlots: slots({ w1: 1 }), providers: [] }),
    );
    expect(spareCapacity).toBe(true);
  });
});


describe('withReportedResultsFreed: a worker whose reported results are being recorded', () => {
  it('counts their slots free: a worker BUSY for them alone is offered jobs, up to its room', () => {
    const busy = worker('w1', { state: 'BUSY', capacity: 3, runningJobIds: ['r1', 'r2', 'r3'], idleSince: undefined });
    const freed = withReportedResultsFreed(busy, new Set(['r1', 'r2', 'x9']));
    expect(freed).toEqual({ ...busy, state: 'READY', runningJobIds: ['r3'] });
    expect(busy.runningJobIds).toEqual(['r1', 'r2', 'r3']);
    const decisions = decide(snapshot({ queuedJobs: [job('j1'), job('j2'), job('j3')], workers: [freed], workerSlots: new Map([['w1', 1]]), providers: [] }));
    expect(ofType('assign', decisions)).toEqual([
      { type: 'assign', jobId: 'j1', workerId: 'w1' },
      { type: 'assign', jobId: 'j2', workerId: 'w1' },
    ]);
  });

  it('leaves the worker as it is without reported results of its own, and keeps BUSY while the jobs left fill it', () => {
    const busy = worker('w1', { state: 'BUSY', capacity: 2, runningJobIds: ['r1', 'r2', 'r3'] });
    expect(withReportedResultsFreed(busy, undefined)).toBe(busy);
    expect(withReportedResultsFreed(busy, new Set(['x1']))).toBe(busy);
    expect(withReportedResultsFreed(busy, new Set(['r1']))).toEqual({ ...busy, runningJobIds: ['r2', 'r3'] });
    const draining = worker('w2', { state: 'DRAINING', capacity: 2, runningJobIds: ['r1'] });
    expect(withReportedResultsFreed(draining, new Set(['r1']))).toEqual({ ...draining, runningJobIds: [] });
  });
});
