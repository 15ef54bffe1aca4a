import type { Job } from '../domain/job';
import { LIVE_WORKER_STATES, type Worker } from '../domain/worker';

/**
 * The ASSIGNED jobs whose assignment can no longer be delivered, so they would wait forever: those assigned to
 * one of `ownWorkers` whose record does not list them (the engine claimed them but could not record or send
 * them, say the store went away between the two writes), and those whose worker is unknown or no longer live
 * (whoever's it was). Call it between scheduling passes, when none of this engine's assignments is under way.
 */
export function strandedAssignments(assigned: readonly Job[], workers: readonly Worker[], ownWorkers: ReadonlySet<string>): Job[] {
  const byId = new Map(workers.map((worker) => [worker.id, worker]));
  return assigned.filter((job) => {
    if (job.state !== 'ASSIGNED' || job.workerId === undefined) return false;
    const worker = byId.get(job.workerId);
    if (!worker || !LIVE_WORKER_STATES.has(worker.state)) return true;
    return ownWorkers.has(worker.id) && !worker.runningJobIds.includes(job.id);
  });
}
