import type { Job } from '../domain/job';

/** The engine's handle on one connected worker; the gRPC layer implements it over the worker's stream. */
export interface WorkerChannel {
  /** Sends the job to run; its first log line will get seq `firstLogSeq` (the job's stored lines + 1). */
  runJob(job: Job, firstLogSeq: number): void;
  cancelJob(jobId: string, graceMs: number): void;
  drain(): void;
  close(): void;
}

/** What a worker says when it registers. */
export interface Registration {
  workerId: string;
  otp?: string;
  sessionToken?: string;
  capacity?: number;
  labels?: Record<string, string>;
}
