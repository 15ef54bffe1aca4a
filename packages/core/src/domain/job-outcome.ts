import type { Job } from './job';

/** How a run ended, as the worker reports it: the command exited (any code), hit its timeout, was cancelled, or could not be started. */
export type Outcome = 'EXITED' | 'TIMED_OUT' | 'CANCELLED' | 'FAILED_TO_START';

/** What a worker reports when a job's process has ended. */
export interface FinishedReport {
  /** How the run ended. */
  outcome: Outcome;
  /** The exit code, or -1 when there is none (killed by a signal, never started). */
  exitCode: number;
  /** The signal that ended the process, or an empty string. */
  signal: string;
  /** Run time on the worker, in milliseconds. */
  durationMs: number;
  /**
   * For a start reported with the result: how long before the result's handling the run started, when the server
   * knows a tighter bound than `durationMs` (never before it sent the job's RunJob, on the monotonic clock).
   * Defaults to `durationMs`.
   */
  startedAgoMs?: number;
  /** Why it failed to start or was stopped, or an empty string. */
  errorMessage: string;
}

/** The final state and fields of a job, from what its worker reported. Pure. */
export function finalJobPatch(report: FinishedReport, now: number): Partial<Job> & Required<Pick<Job, 'state' | 'completedAt'>> {
  const base: Partial<Job> & Required<Pick<Job, 'completedAt'>> = {
    completedAt: now,
    durationMs: report.durationMs,
    ...(report.exitCode >= 0 ? { exitCode: report.exitCode } : {}),
    ...(report.signal ? { signal: report.signal } : {}),
    ...(report.errorMessage ? { errorMessage: report.errorMessage } : {}),
  };
  switch (report.outcome) {
    case 'TIMED_OUT':
      return { ...base, state: 'TIMED_OUT' };
    case 'CANCELLED':
      return { ...base, state: 'CANCELLED' };
    case 'FAILED_TO_START':
      return { ...base, state: 'FAILED', failureReason: 'FAILED_TO_START' };
    case 'EXITED':
      if (report.exitCode === 0) return { ...base, state: 'SUCCEEDED' };
      return {
        ...base,
        state: 'FAILED',
        failureReason: 'EXIT_CODE',
        errorMessage:
          report.errorMessage ||
          (report.signal ? `killed by ${report.signal}` : `command exited with code ${report.exitCode}`),
      };
  }
}

/**
 * When a run started, by the engine's clock: `agoMs` before `now` (the worker measures that time and reports it with
 * the start or the end), yet never before `notBefore` (the job's assignment: the assigning server's clock may run
 * ahead of this one's) nor after `now`. Pure.
 */
export function startTime(now: number, agoMs: number, notBefore: number): number {
  return Math.min(now, Math.max(notBefore, now - agoMs));
}
