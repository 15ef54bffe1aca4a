import type { Job } from '../domain/job';

/** The engine's handle on one connected worker; the gRPC layer implements it over the worker's stream. */
export interface WorkerChannel {
  /** Sends the job to the worker to run; its first log line gets seq `firstLogSeq` (the job's stored lines + 1). */
  runJob(job: Job, firstLogSeq: number): void;
  /** Asks the worker to stop the job: SIGTERM, then SIGKILL after `graceMs` milliseconds. */
  cancelJob(jobId: string, graceMs: number): void;
  /** Asks the worker to finish its running jobs, take no new ones and exit. */
  drain(): void;
  /** Ends the worker's stream. */
  close(): void;
}

/** What a worker says when it registers. */
export interface Registration {
  /** The worker id its provider was given. */
  workerId: string;
  /** One-time token, on first registration. */
  otp?: string;
  /** Session token, when reconnecting after a broken stream. */
  sessionToken?: string;
  /** Jobs it can run at once; the provider's `workerCapacity` when absent. */
  capacity?: number;
  /** Labels it carries, added to its provider's. */
  labels?: Record<string, string>;
}
