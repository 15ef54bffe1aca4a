import type { Job } from '../domain/job';

/**
 * Hooks the engine calls as things happen, for metrics and tracing. Every method is optional and must not
 * throw or block: they run on the engine's hot paths.
 */
export interface EngineObserver {
  /** A job was accepted and stored as QUEUED. */
  jobQueued?(job: Job): void;
  /** The worker started the job; `queueToStartMs` is from queueing to this start. */
  jobStarted?(job: Job, queueToStartMs: number): void;
  /** The job reached a terminal state. */
  jobFinished?(job: Job): void;
  /** `provider` started a worker (it has not registered yet). */
  workerProvisioned?(provider: string): void;
  /** `provider` failed to start a worker, or the worker exited before registering. */
  provisioningFailed?(provider: string): void;
  /** A batch of log lines was stored: how many, and their characters. */
  logLines?(count: number, characters: number): void;
}
