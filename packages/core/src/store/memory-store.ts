import { isTerminalJobState, type Job, type JobSpec, type JobState } from '../domain/job';
import type { Worker } from '../domain/worker';
import { isBackingOff, labelsMatch } from '../engine/scheduler';
import type {
  AuditEvent,
  JobAndLogCount,
  JobClaim,
  JobFilter,
  JobGuard,
  LogLine,
  LogLineBatch,
  NewLogLine,
  NewLogLineBatch,
  Store,
  StoredToken,
  WorkerGuard,
  WorkersAndQueue,
} from '../ports/store';
import { HodeiError } from '../domain/errors';
import { logLineBatchCount, packLogLineBatch, sliceLogLineBatch, unpackLogLineBatch } from './log-line-batch';
import { toAuditEventList } from './audit-event-list';

function copySpec(spec: JobSpec): JobSpec {
  const copy: JobSpec = { ...spec, args: [...spec.args], env: { ...spec.env }, labels: { ...spec.labels } };
  if (spec.script) copy.script = { ...spec.script };
  return copy;
}

/** Records are copied in and out (spec included), so no caller shares an object with the store. */
function copyJob(job: Job): Job {
  return { ...job, spec: copySpec(job.spec) };
}

function copyWorker(worker: Worker): Worker {
  return { ...worker, runningJobIds: [...worker.runningJobIds], labels: { ...worker.labels } };
}

/**
 * One job's lines, kept as the batches they were appended in: one string and a few flat arrays per batch,
 * no object or string per line. Millions of retained per-line objects made the garbage collector the main
 * cost of streaming a big log.
 */
class LogBatches {
  length = 0;
  private readonly batches: LogLineBatch[] = [];

  append(batch: NewLogLineBatch): number {
    const count = logLineBatchCount(batch);
    if (count > 0) {
      this.batches.push({ ...batch, firstSeq: this.length + 1 });
      this.length += count;
    }
    return this.length;
  }

  read(fromSeq: number, maxLines: number): LogLineBatch[] {
    const first = Math.max(1, fromSeq);
    const last = Math.min(this.length, first + Math.max(0, Math.floor(maxLines)) - 1);
    if (last < first) return [];
    // The batch holding `first`: the last one starting at or before it.
    let low = 0;
    let high = this.batches.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if (this.batches[middle]!.firstSeq <= first) low = middle;
      else high = middle - 1;
    }
    const read: LogLineBatch[] = [];
    for (let index = low; index < this.batches.length; index++) {
      const batch = this.batches[index]!;
      if (batch.firstSeq > last) break;
      read.push(sliceLogLineBatch(batch, first - batch.firstSeq, last - batch.firstSeq + 1));
    }
    return read;
  }
}

function queueOrder(a: Job, b: Job): number {
  return b.spec.priority - a.spec.priority || a.createdAt - b.createdAt;
}

/**
 * The embedded default store: everything in this process's memory, gone when it exits.
 *
 * @example const platform = await createPlatform({ store: new MemoryStore(), providers: [...] });
 */
export class MemoryStore implements Store {
  readonly specificationVersion = 'v1' as const;
  readonly name = 'memory';
  private readonly jobs = new Map<string, Job>();
  private readonly queued = new Set<string>();
  /** Ids of the ASSIGNED jobs: a retried claim looks among them. */
  private readonly assigned = new Set<string>();
  private readonly workers = new Map<string, Worker>();
  private readonly logs = new Map<string, LogBatches>();
  private readonly tokens = new Map<string, StoredToken>();
  private readonly audit = new Map<string, AuditEvent[]>();
  private readonly changeListeners = new Set<(jobId: string, state: JobState) => void>();
  private closed = false;

  private checkOpen(): void {
    if (this.closed) throw new HodeiError('CLOSED', 'the memory store is closed');
  }

  async insertJob(job: Job, audit?: AuditEvent): Promise<void> {
    this.checkOpen();
    if (this.jobs.has(job.id)) throw new HodeiError('CONFLICT', `job ${job.id} already exists`);
    this.jobs.set(job.id, copyJob(job));
    this.track(job);
    if (audit) this.recordAudit(audit);
  }

  async getJob(id: string): Promise<Job | undefined> {
    const job = this.jobs.get(id);
    return job && copyJob(job);
  }

  async getJobAndLogCount(id: string): Promise<JobAndLogCount | undefined> {
    const job = this.jobs.get(id);
    return job && { job: copyJob(job), logCount: this.logs.get(id)?.length ?? 0 };
  }

  async listJobs(filter: JobFilter = {}): Promise<Job[]> {
    const limit = filter.limit ?? 100;
    const states = filter.states && new Set(filter.states);
    const result: Job[] = [];
    const all = [...this.jobs.values()];
    for (let index = all.length - 1; index >= 0 && result.length < limit; index--) {
      const job = all[index]!;
      if (!states || states.has(job.state)) result.push(copyJob(job));
    }
    return result;
  }

  async countJobsByState(): Promise<Partial<Record<JobState, number>>> {
    this.checkOpen();
    const counts: Partial<Record<JobState, number>> = {};
    for (const job of this.jobs.values()) counts[job.state] = (counts[job.state] ?? 0) + 1;
    return counts;
  }

  async queuedJobs(limit: number): Promise<Job[]> {
    const result: Job[] = [];
    for (const id of this.queued) result.push(this.jobs.get(id)!);
    return result.sort(queueOrder).slice(0, limit).map(copyJob);
  }

  async updateJob(id: string, guard: JobGuard, patch: Partial<Job>, audit?: AuditEvent | readonly AuditEvent[]): Promise<Job | undefined> {
    this.checkOpen();
    const job = this.jobs.get(id);
    if (!job) return undefined;
    if (guard.states && !guard.states.includes(job.state)) return undefined;
    if (guard.epoch !== undefined && guard.epoch !== job.epoch) return undefined;
    if (guard.cancelRequested !== undefined && (job.cancelRequestedAt !== undefined) !== guard.cancelRequested) return undefined;
    this.applyPatch(job, patch, toAuditEventList(audit));
    return copyJob(job);
  }

  async compareAndSetJob(id: string, guard: JobGuard, patch: Partial<Job>, audit?: AuditEvent | readonly AuditEvent[]): Promise<boolean> {
    return (await this.updateJob(id, guard, patch, audit)) !== undefined;
  }

  /** Applies `patch` to the stored job (an undefined value deletes the field) with its audit events, and announces a state change. */
  private applyPatch(job: Job, patch: Partial<Job>, events: readonly AuditEvent[]): void {
    const stateBefore = job.state;
    Object.assign(job, patch);
    if (patch.spec) job.spec = copySpec(patch.spec);
    for (const [key, value] of Object.entries(patch)) {
      if (value === undefined) delete (job as unknown as Record<string, unknown>)[key];
    }
    this.track(job);
    for (const event of events) this.recordAudit(event);
    if (job.state !== stateBefore) this.jobChanged(job.id, job.state);
  }

  /** Keeps the QUEUED and ASSIGNED id sets in step with a job's state. */
  private track(job: Job): void {
    if (job.state === 'QUEUED') this.queued.add(job.id);
    else this.queued.delete(job.id);
    if (job.state === 'ASSIGNED') this.assigned.add(job.id);
    else this.assigned.delete(job.id);
  }

  /** Claims the next queued jobs the worker can run, in queue order; see {@link Store.claimJobs}. */
  async claimJobs(claim: JobClaim): Promise<Job[]> {
    this.checkOpen();
    return this.claim(claim).map(copyJob);
  }

  /** The jobs a claim by the same worker at the same time took already, in queue order. */
  private claimedBefore(claim: JobClaim): Job[] {
    const claimed: Job[] = [];
    for (const id of this.assigned) {
      const job = this.jobs.get(id)!;
      if (job.workerId === claim.workerId && job.assignedAt === claim.now) claimed.push(job);
    }
    return claimed.sort(queueOrder);
  }

  /** `claimJobs` on the stored jobs: the jobs claimed (or, for a retried claim, claimed before), in queue order. */
  private claim(claim: JobClaim): Job[] {
    const claimed = this.claimedBefore(claim);
    const candidates: Job[] = [];
    for (const id of this.queued) {
      const job = this.jobs.get(id)!;
      if (!isBackingOff(job, claim.now) && labelsMatch(job.spec.labels, claim.labels)) candidates.push(job);
    }
    candidates.sort(queueOrder);
    // A retried claim (same worker and time) gets the jobs its first attempt took, and no more.
    for (const job of claimed.length > 0 ? [] : candidates) {
      if (claimed.length >= claim.limit) break;
      const epoch = job.epoch + 1;
      this.applyPatch(job, { state: 'ASSIGNED', workerId: claim.workerId, epoch, assignedAt: claim.now, notBefore: undefined }, [
        { eventType: 'job.assigned', correlationId: job.id, occurredAt: claim.now, details: { workerId: claim.workerId, epoch, attempt: job.attempt } },
      ]);
      claimed.push(job);
    }
    return claimed.sort(queueOrder);
  }

  async insertWorker(worker: Worker): Promise<void> {
    this.checkOpen();
    if (this.workers.has(worker.id)) throw new HodeiError('CONFLICT', `worker ${worker.id} already exists`);
    this.workers.set(worker.id, copyWorker(worker));
  }

  async getWorker(id: string): Promise<Worker | undefined> {
    const worker = this.workers.get(id);
    return worker && copyWorker(worker);
  }

  async listWorkers(filter: { states?: readonly Worker['state'][] } = {}): Promise<Worker[]> {
    const result: Worker[] = [];
    for (const worker of this.workers.values()) {
      if (!filter.states || filter.states.includes(worker.state)) result.push(copyWorker(worker));
    }
    return result;
  }

  async listWorkersAndQueue(workerStates: readonly Worker['state'][], queueLimit: number): Promise<WorkersAndQueue> {
    return { workers: await this.listWorkers({ states: workerStates }), queuedJobs: await this.queuedJobs(queueLimit) };
  }

  async updateWorker(id: string, guard: WorkerGuard, patch: Partial<Worker>): Promise<Worker | undefined> {
    this.checkOpen();
    const worker = this.workers.get(id);
    if (!worker) return undefined;
    if (guard.states && !guard.states.includes(worker.state)) return undefined;
    Object.assign(worker, copyWorker({ ...worker, ...patch }));
    return copyWorker(worker);
  }

  /** Adds job ids to a READY or BUSY worker's running jobs; see {@link Store.addRunningJobs}. */
  async addRunningJobs(workerId: string, jobIds: readonly string[]): Promise<Worker | undefined> {
    this.checkOpen();
    const worker = this.workers.get(workerId);
    return worker && this.addRunning(worker, jobIds) ? copyWorker(worker) : undefined;
  }

  /** `addRunningJobs` on a stored worker: false when it is neither READY nor BUSY and some id is not listed yet. */
  private addRunning(worker: Worker, jobIds: readonly string[]): boolean {
    const added = jobIds.filter((id, index) => !worker.runningJobIds.includes(id) && jobIds.indexOf(id) === index);
    if (added.length === 0) return true;
    if (worker.state !== 'READY' && worker.state !== 'BUSY') return false;
    worker.runningJobIds = [...worker.runningJobIds, ...added];
    worker.state = worker.runningJobIds.length >= worker.capacity ? 'BUSY' : 'READY';
    delete worker.idleSince;
    return true;
  }

  /** Removes job ids from a worker's running jobs; see {@link Store.removeRunningJobs}. */
  async removeRunningJobs(workerId: string, jobIds: readonly string[], now: number): Promise<Worker | undefined> {
    this.checkOpen();
    const worker = this.workers.get(workerId);
    if (!worker || jobIds.length === 0) return worker && copyWorker(worker);
    worker.runningJobIds = worker.runningJobIds.filter((id) => !jobIds.includes(id));
    if (worker.state === 'READY' || worker.state === 'BUSY') worker.state = worker.runningJobIds.length >= worker.capacity ? 'BUSY' : 'READY';
    if (worker.runningJobIds.length === 0) worker.idleSince = now;
    return copyWorker(worker);
  }

  async appendLogs(jobId: string, lines: readonly NewLogLine[]): Promise<number> {
    return this.appendLogBatch(jobId, packLogLineBatch(lines));
  }

  async readLogs(jobId: string, fromSeq: number, limit: number): Promise<LogLine[]> {
    return (await this.readLogBatches(jobId, fromSeq, limit)).flatMap(unpackLogLineBatch);
  }

  /** Keeps the batch as it is (its arrays are retained: the caller must not change them afterwards). */
  async appendLogBatch(jobId: string, batch: NewLogLineBatch): Promise<number> {
    this.checkOpen();
    let stored = this.logs.get(jobId);
    if (!stored) {
      stored = new LogBatches();
      this.logs.set(jobId, stored);
    }
    return stored.append(batch);
  }

  async readLogBatches(jobId: string, fromSeq: number, maxLines: number): Promise<LogLineBatch[]> {
    return this.logs.get(jobId)?.read(fromSeq, maxLines) ?? [];
  }

  async saveToken(token: StoredToken): Promise<void> {
    this.checkOpen();
    this.tokens.set(token.hash, { ...token });
  }

  async consumeToken(hash: string): Promise<StoredToken | undefined> {
    const token = this.tokens.get(hash);
    this.tokens.delete(hash);
    return token;
  }

  async appendAudit(event: AuditEvent): Promise<void> {
    this.recordAudit(event);
  }

  private recordAudit(event: AuditEvent): void {
    const events = this.audit.get(event.correlationId) ?? [];
    events.push({ ...event });
    this.audit.set(event.correlationId, events);
  }

  async listAudit(correlationId: string): Promise<AuditEvent[]> {
    return (this.audit.get(correlationId) ?? []).map((event) => ({ ...event }));
  }

  /** Deletes finished jobs completed before `completedBefore`, the earliest created first, at most `limit`, with their lines. */
  async deleteFinishedJobs(completedBefore: number, limit: number): Promise<number> {
    this.checkOpen();
    const due: Job[] = [];
    for (const job of this.jobs.values()) {
      if (isTerminalJobState(job.state) && job.completedAt !== undefined && job.completedAt < completedBefore) due.push(job);
    }
    // Map order is insertion order: a stable sort keeps it among jobs created in the same millisecond.
    due.sort((a, b) => a.createdAt - b.createdAt);
    const deleted = due.slice(0, Math.max(0, Math.floor(limit)));
    for (const job of deleted) {
      this.jobs.delete(job.id);
      this.logs.delete(job.id);
    }
    return deleted.length;
  }

  /** Calls `listener` (synchronously, in this process) with the job's id and new state whenever a job's state changes. */
  onJobChanged(listener: (jobId: string | undefined, state?: JobState) => void): () => void {
    const entry = (jobId: string, state: JobState) => listener(jobId, state);
    this.changeListeners.add(entry);
    return () => this.changeListeners.delete(entry);
  }

  private jobChanged(jobId: string, state: JobState): void {
    for (const listener of [...this.changeListeners]) {
      try {
        listener(jobId, state);
      } catch {
        // A listener's failure is its own.
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.changeListeners.clear();
  }
}
