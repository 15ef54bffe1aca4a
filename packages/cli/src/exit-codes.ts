import { constants } from 'node:os';
import { HodeiError, type Job } from '@hodei/core';

/** Every exit code the CLI uses besides a job's own exit code. */
export const EXIT = {
  /** The command succeeded (for `job run`: the job exited 0). */
  OK: 0,
  /** The server is unreachable or failed, or a job failed for a reason other than its exit code. */
  FAILURE: 1,
  /** Bad usage or invalid input, including an unknown job id. */
  USAGE: 2,
  /** `job run`: the job hit its timeout (as `timeout(1)` does). */
  TIMED_OUT: 124,
  /** `job run`: the job was cancelled (as a shell reports Ctrl-C). */
  CANCELLED: 130,
} as const;

/** Exit code for an error that ended a command. */
export function exitCodeForError(error: unknown): number {
  if (!HodeiError.isInstance(error)) return EXIT.FAILURE;
  switch (error.code) {
    case 'INVALID_ARGUMENT':
    case 'NOT_FOUND':
    case 'ILLEGAL_TRANSITION':
    case 'CONFLICT':
      return EXIT.USAGE;
    default:
      return EXIT.FAILURE;
  }
}

/** Exit code of `hodei job run` for a job in a terminal state. */
export function exitCodeForJob(job: Pick<Job, 'state' | 'exitCode' | 'signal' | 'failureReason'>): number {
  switch (job.state) {
    case 'SUCCEEDED':
      return EXIT.OK;
    case 'TIMED_OUT':
      return EXIT.TIMED_OUT;
    case 'CANCELLED':
      return EXIT.CANCELLED;
    case 'FAILED': {
      const byExit = job.failureReason === undefined || job.failureReason === 'EXIT_CODE';
      if (byExit && typeof job.exitCode === 'number' && job.exitCode > 0 && job.exitCode <= 255) return job.exitCode;
      if (byExit && job.signal) {
        const number = (constants.signals as Record<string, number | undefined>)[job.signal];
        if (number) return 128 + number;
      }
      return EXIT.FAILURE;
    }
    default:
      return EXIT.FAILURE;
  }
}
