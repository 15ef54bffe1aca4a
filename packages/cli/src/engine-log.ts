import type { EngineObserver, Logger } from '@hodei/core';

/**
 * An observer that logs what the engine does at `info` (a job queued, started on a worker, ended; a worker
 * started or failing to start), for `hodei server --log-level info` (or `-v`): what an operator reads to see why
 * a job does not run.
 */
export function engineEventsLog(logger: Logger): EngineObserver {
  return {
    jobQueued: (job) => logger.info({ jobId: job.id, name: job.spec.name }, `job ${job.id} (${job.spec.name}) queued`),
    jobStarted: (job, queueToStartMs) =>
      logger.info(
        { jobId: job.id, workerId: job.workerId, attempt: job.attempt, queueToStartMs },
        `job ${job.id} started on worker ${job.workerId ?? '?'} (attempt ${job.attempt}, ${queueToStartMs} ms after it was queued)`,
      ),
    jobFinished: (job) =>
      logger.info(
        { jobId: job.id, state: job.state, exitCode: job.exitCode, failureReason: job.failureReason },
        `job ${job.id} ${job.state}${job.exitCode === undefined ? '' : ` (exit code ${job.exitCode})`}${job.errorMessage ? `: ${job.errorMessage}` : ''}`,
      ),
    workerProvisioned: (provider) => logger.info({ provider }, `provider ${provider} started a worker`),
    provisioningFailed: (provider) => logger.warn({ provider }, `provider ${provider} could not start a worker`),
  };
}

/** One observer calling each of `observers` in turn, for the hooks any of them has (one observer: itself). */
export function bothObservers(...observers: EngineObserver[]): EngineObserver {
  if (observers.length === 1) return observers[0]!;
  const combined: EngineObserver = {};
  const hooks = new Set(observers.flatMap((observer) => Object.keys(observer) as (keyof EngineObserver)[]));
  for (const hook of hooks) {
    const calls = observers.map((observer) => observer[hook]).filter((call) => call !== undefined);
    if (calls.length === 0) continue;
    (combined as Record<string, unknown>)[hook] = (...args: unknown[]) => {
      for (const call of calls) (call as (...values: unknown[]) => void)(...args);
    };
  }
  return combined;
}
