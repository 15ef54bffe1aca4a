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
  /**
   * It holds jobs beyond its capacity and starts them in the order they came as slots free: it may be granted
   * the engine's `prefetch`. Absent or false (an older worker): it is sent no more jobs than its capacity.
   */
  holdsPrefetchedJobs?: boolean;
  /**
   * It ignores a RunJob for a run (job id and epoch) it already took: when it reconnects, it is sent the RunJob of
   * each job assigned to it again (one written just before its stream broke may never have arrived). Absent or
   * false (an older worker): nothing is sent again.
   */
  ignoresRepeatedRuns?: boolean;
}

/** What the engine answers a registration with. */
export interface RegistrationGrant {
  /** What the worker presents when it reconnects. */
  sessionToken: string;
  /** How often it sends heartbeats. */
  heartbeatIntervalMs: number;
  /** How many jobs beyond its capacity it may be sent (0 for a worker that does not hold jobs). */
  prefetch: number;
}
