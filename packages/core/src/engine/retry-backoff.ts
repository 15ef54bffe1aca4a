/** The longest a re-queued job waits before it may run again. */
export const MAX_RETRY_BACKOFF_MS = 30_000;
/** Jitter: the delay is scaled by a random factor in [1 - JITTER, 1 + JITTER]. */
export const RETRY_JITTER = 0.2;

/**
 * How long a job waits before its next attempt after `failedAttempt` failed (1 for the first run):
 * `baseMs` doubling per attempt, capped at 30 s, with ±20 % jitter so retries of many jobs spread out.
 * `random` returns a number in [0, 1) (injectable for tests).
 */
export function retryBackoffMs(failedAttempt: number, baseMs: number, random: () => number = Math.random): number {
  const exponent = Math.max(0, failedAttempt - 1);
  const delay = Math.min(MAX_RETRY_BACKOFF_MS, baseMs * 2 ** Math.min(exponent, 30));
  const factor = 1 + RETRY_JITTER * (2 * random() - 1);
  return Math.round(delay * factor);
}
