import type { Job } from '../domain/job';
import type { Worker } from '../domain/worker';

/** A provider as the scheduler sees it: its name and capabilities. */
export interface ProviderSlot {
  /** The provider's name. */
  name: string;
  /** Most workers it may have alive at once. */
  maxWorkers: number;
  /** Jobs each of its workers runs at once. */
  workerCapacity: number;
  /** Labels its workers carry. */
  labels: Record<string, string>;
}

/** Everything the scheduler looks at: a snapshot, so deciding is a pure function. */
export interface SchedulerSnapshot {
  /** Current time, in milliseconds since the Unix epoch. */
  now: number;
  /** QUEUED jobs in run order; one whose `notBefore` is later than `now` is backing off and skipped. */
  queuedJobs: readonly Job[];
  /** Workers in a live state (CREATING … TERMINATING). */
  workers: readonly Worker[];
  /** Providers that may be asked for workers (those in a failure backoff are left out). */
  providers: readonly ProviderSlot[];
  /** A connected worker silent for longer is LOST. */
  heartbeatTimeoutMs: number;
  /** A worker idle for longer is terminated. */
  idleTimeoutMs: number;
  /** A worker that has not registered after this long is terminated. */
  provisioningTimeoutMs: number;
  /**
   * How many jobs a worker runs at once, for each worker whose `capacity` also counts jobs it may hold beyond
   * them (prefetch); a worker not listed runs `capacity` jobs at once. A job goes to a worker's prefetch room
   * only when no worker has a free slot for it, no provider may start one and no worker that could run it is
   * being started (so that jobs are spread over the workers once they are up, not held by the first); a
   * worker whose slots are all taken is sent more only once half its prefetch room is free (claims of many
   * jobs at once).
   */
  workerSlots?: ReadonlyMap<string, number>;
}

/** One action for the {@link JobController} to apply: `assign` a job to a worker, `provision` a worker from a provider, let a job `wait` (no capacity), `terminate` an idle or never-connected worker, or mark a silent worker `lost`. */
export type Decision =
  | { type: 'assign'; jobId: string; workerId: string }
  | { type: 'provision'; provider: string }
  | { type: 'wait'; jobId: string; reason: string }
  | { type: 'terminate'; workerId: string; reason: 'idle' | 'provisioning-timeout' }
  | { type: 'lost'; workerId: string; reason: 'heartbeat-timeout' };

/** True when `worker` carries every label the job asks for. */
export function labelsMatch(required: Record<string, string>, offered: Record<string, string>): boolean {
  for (const key in required) if (offered[key] !== required[key]) return false;
  return true;
}

/** Whether a worker was not heard from within the heartbeat timeout (or never sent a heartbeat). */
export function isSilent(worker: Worker, now: number, heartbeatTimeoutMs: number): boolean {
  return worker.lastHeartbeat === undefined || now - worker.lastHeartbeat > heartbeatTimeoutMs;
}

/** A worker may be offered a job only when READY, with a free slot and a heartbeat newer than the timeout. */
export function isAvailable(worker: Worker, now: number, heartbeatTimeoutMs: number): boolean {
  return worker.state === 'READY' && worker.runningJobIds.length < worker.capacity && !isSilent(worker, now, heartbeatTimeoutMs);
}

/** True while a re-queued job waits out its retry backoff: its `notBefore` is later than `now`. */
export function isBackingOff(job: Job, now: number): boolean {
  return job.notBefore !== undefined && job.notBefore > now;
}

/**
 * When the first of the queued jobs that are backing off at `now` may run (the smallest `notBefore` later
 * than `now`), or `undefined` when none is: the engine schedules its next pass for then.
 */
export function nextBackoffEnd(queuedJobs: readonly Job[], now: number): number | undefined {
  let earliest: number | undefined;
  for (const job of queuedJobs) {
    if (isBackingOff(job, now) && (earliest === undefined || job.notBefore! < earliest)) earliest = job.notBefore;
  }
  return earliest;
}

const PENDING = new Set(['CREATING', 'CONNECTING']);
const CONNECTED = new Set(['READY', 'BUSY', 'DRAINING']);

interface Capacity {
  labels: Record<string, string>;
  free: number;
}

function takeSlot<T extends Capacity>(slots: T[], job: Job): T | undefined {
  const slot = slots.find((candidate) => candidate.free > 0 && labelsMatch(job.spec.labels, candidate.labels));
  if (slot) slot.free -= 1;
  return slot;
}

/** An available worker's room: `free` counts its free slots, `room` those plus its free prefetch room. */
interface WorkerRoom extends Capacity {
  worker: Worker;
  room: number;
}

/**
 * An available worker's free slots (`free`) and the jobs it may be sent now (`room`: its free slots and free
 * prefetch room). A worker holding jobs beyond its slots is sent more only once at least half its prefetch
 * room is free: claims of many jobs at once rather than one per job that ends, and its slots never starve (it
 * still holds jobs for them).
 */
export function workerRoom(worker: Worker, workerSlots: SchedulerSnapshot['workerSlots']): { free: number; room: number } {
  const held = worker.runningJobIds.length;
  const slots = Math.min(worker.capacity, workerSlots?.get(worker.id) ?? worker.capacity);
  const free = Math.max(0, slots - held);
  const room = worker.capacity - held;
  const prefetch = worker.capacity - slots;
  return { free, room: free > 0 || room * 2 >= prefetch ? room : 0 };
}

/**
 * The worker as the scheduler counts it while results it reported are being recorded: `reported` names jobs whose
 * result the worker has sent (it freed their slots when they ended, and starts its next jobs or waits for more)
 * while the store's record still lists them (the results' writes have not landed). Those jobs are left out of its
 * running jobs, and a worker BUSY for them alone is READY, so that it is sent more jobs as soon as it has room,
 * not one store write later. The record itself is not changed: the store drops each job from it once its result
 * is recorded.
 */
export function withReportedResultsFreed(worker: Worker, reported: ReadonlySet<string> | undefined): Worker {
  if (!reported || reported.size === 0) return worker;
  const runningJobIds = worker.runningJobIds.filter((id) => !reported.has(id));
  if (runningJobIds.length === worker.runningJobIds.length) return worker;
  const state = worker.state === 'BUSY' && runningJobIds.length < worker.capacity ? 'READY' : worker.state;
  return { ...worker, runningJobIds, state };
}

/** Takes a free slot of a worker for `job`: one it would start at once, else none. */
function takeWorkerSlot(rooms: WorkerRoom[], job: Job): WorkerRoom | undefined {
  const slot = takeSlot(rooms, job);
  if (slot) slot.room -= 1;
  return slot;
}

/** Takes room for `job` to wait in on a worker (prefetch): on the matching worker with the most room left, so held jobs spread. */
function takePrefetchRoom(rooms: WorkerRoom[], job: Job): WorkerRoom | undefined {
  let best: WorkerRoom | undefined;
  for (const candidate of rooms) {
    if (candidate.room > (best?.room ?? 0) && labelsMatch(job.spec.labels, candidate.labels)) best = candidate;
  }
  if (best) best.room -= 1;
  return best;
}

/**
 * Decides what to do next: assign queued jobs to available workers, provision workers for the rest (never
 * more than the queue needs nor than a provider's `maxWorkers`), mark silent workers lost, and terminate
 * workers that idled past the timeout or never connected.
 */
export function decide(snapshot: SchedulerSnapshot): Decision[] {
  return plan(snapshot).decisions;
}

/** What {@link plan} returns: the decisions, and whether more of the queue could have changed them. */
export interface SchedulingPlan {
  /** The decisions, as {@link decide} returns them. */
  decisions: Decision[];
  /**
   * True when, after every queued job of the snapshot, an available worker still has a free slot or a
   * provider may still start a worker: a job further back in the queue could then be assigned or get a
   * worker. False means the rest of the queue can only wait, so a caller that passed the head of the queue
   * need not read more of it.
   */
  spareCapacity: boolean;
}

/** How many of `workers` each provider has. */
function workersByProvider(workers: readonly Worker[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const worker of workers) counts.set(worker.provider, (counts.get(worker.provider) ?? 0) + 1);
  return counts;
}

/**
 * Whether one of `workers` is being started, or one of `providers` may start another: while so, no job goes to a
 * worker's prefetch room (see {@link SchedulerSnapshot.workerSlots}).
 */
export function mayStartWorker(workers: readonly Worker[], providers: readonly { name: string; maxWorkers: number }[]): boolean {
  if (workers.some((worker) => PENDING.has(worker.state))) return true;
  const live = workersByProvider(workers);
  return providers.some((provider) => (live.get(provider.name) ?? 0) < provider.maxWorkers);
}

/**
 * How many queued jobs, from the head of the queue, a pass can act on at most: one per free slot of the
 * available workers and of the workers being started, plus one per slot of every worker the providers may
 * still start. With jobs that all fit every worker, reading this many is enough; {@link plan}'s
 * `spareCapacity` says when it was not (labels kept a job off a slot).
 */
export function queueDemandBound(snapshot: Omit<SchedulerSnapshot, 'queuedJobs'>): number {
  let slots = 0;
  for (const worker of snapshot.workers) {
    if (isAvailable(worker, snapshot.now, snapshot.heartbeatTimeoutMs)) slots += workerRoom(worker, snapshot.workerSlots).room;
    else if (PENDING.has(worker.state)) slots += worker.capacity;
  }
  const liveByProvider = workersByProvider(snapshot.workers);
  for (const provider of snapshot.providers) {
    slots += Math.max(0, provider.maxWorkers - (liveByProvider.get(provider.name) ?? 0)) * provider.workerCapacity;
  }
  return slots;
}

/** {@link decide}, also saying whether jobs past the snapshot's queue could have been acted on. */
export function plan(snapshot: SchedulerSnapshot): SchedulingPlan {
  const { now } = snapshot;
  const decisions: Decision[] = [];
  const usable: Worker[] = [];

  for (const worker of snapshot.workers) {
    const silent = isSilent(worker, now, snapshot.heartbeatTimeoutMs);
    if (CONNECTED.has(worker.state) && silent) {
      decisions.push({ type: 'lost', workerId: worker.id, reason: 'heartbeat-timeout' });
    } else if (PENDING.has(worker.state) && now - worker.createdAt > snapshot.provisioningTimeoutMs) {
      decisions.push({ type: 'terminate', workerId: worker.id, reason: 'provisioning-timeout' });
    } else {
      usable.push(worker);
    }
  }

  const available: WorkerRoom[] = usable
    .filter((worker) => isAvailable(worker, now, snapshot.heartbeatTimeoutMs))
    .map((worker) => ({ worker, labels: worker.labels, ...workerRoom(worker, snapshot.workerSlots) }));
  const pending = usable
    .filter((worker) => PENDING.has(worker.state))
    .map((worker) => ({ labels: worker.labels, free: worker.capacity }));
  const liveByProvider = workersByProvider(snapshot.workers);

  const assigned = new Set<string>();
  for (const job of snapshot.queuedJobs) {
    if (isBackingOff(job, now)) {
      decisions.push({ type: 'wait', jobId: job.id, reason: 'backing off before its next attempt' });
      continue;
    }
    const slot = takeWorkerSlot(available, job);
    if (slot) {
      decisions.push({ type: 'assign', jobId: job.id, workerId: slot.worker.id });
      assigned.add(slot.worker.id);
      continue;
    }
    if (takeSlot(pending, job)) {
      decisions.push({ type: 'wait', jobId: job.id, reason: 'waiting for a worker being provisioned' });
      continue;
    }
    const matching = snapshot.providers.filter((provider) => labelsMatch(job.spec.labels, provider.labels));
    const provider = matching.find((candidate) => (liveByProvider.get(candidate.name) ?? 0) < candidate.maxWorkers);
    if (provider) {
      decisions.push({ type: 'provision', provider: provider.name });
      liveByProvider.set(provider.name, (liveByProvider.get(provider.name) ?? 0) + 1);
      pending.push({ labels: provider.labels, free: provider.workerCapacity - 1 });
      continue;
    }
    // Held on a worker, a job would not move to a worker being started for the queue: none is held meanwhile.
    const starting = pending.some((worker) => labelsMatch(job.spec.labels, worker.labels));
    const room = starting ? undefined : takePrefetchRoom(available, job);
    if (room) {
      decisions.push({ type: 'assign', jobId: job.id, workerId: room.worker.id });
      assigned.add(room.worker.id);
      continue;
    }
    decisions.push({
      type: 'wait',
      jobId: job.id,
      reason: matching.length === 0 ? 'no provider offers the labels this job asks for' : 'every worker is busy',
    });
  }

  for (const { worker } of available) {
    const idle = worker.runningJobIds.length === 0 && !assigned.has(worker.id);
    if (idle && worker.idleSince !== undefined && now - worker.idleSince >= snapshot.idleTimeoutMs) {
      decisions.push({ type: 'terminate', workerId: worker.id, reason: 'idle' });
    }
  }
  const spareCapacity =
    available.some((slot) => slot.room > 0) ||
    snapshot.providers.some((provider) => (liveByProvider.get(provider.name) ?? 0) < provider.maxWorkers);
  return { decisions, spareCapacity };
}
