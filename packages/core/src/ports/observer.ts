import type { Job } from '../domain/job';

/**
 * Hooks the engine calls as things happen, for metrics and tracing. Every method is optional and must not
 * throw or block: they run on the engine's hot paths.
 */
export interface EngineObserver {
  jobQueued?(job: Job): void;
  /** The worker started the job; `queueToStartMs` is from queueing to this start. */
  jobStarted?(job: Job, queueToStartMs: number): void;
  /** The job reached a terminal state. */
  jobFinished?(job: Job): void;
  workerProvisioned?(provider: string): void;
  provisioningFailed?(provider: string): void;
  /** A batch of log lines was stored: how many, and their characters. */
  logLines?(count: number, characters: number): void;
}
