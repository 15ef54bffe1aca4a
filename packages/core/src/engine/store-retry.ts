import { HodeiError } from '../domain/errors';
import type { Logger } from '../ports/logger';
import type { Store } from '../ports/store';

/** How the engine rides out a store that is briefly unreachable (a database restart, a network cut). */
export interface StoreRetryOptions {
  /** Gets one warn line when the store becomes unavailable and one info line when it is back. */
  logger: Logger;
  /** First delay after a failed call; doubles per attempt. Default 100 ms. */
  minDelayMs?: number;
  /** Longest delay between two attempts of one call. Default 2 s. */
  maxDelayMs?: number;
  /** A call still failing this long after its first attempt gives up and throws the store's error. Default 60 s. */
  giveUpAfterMs?: number;
  /** Called when the store answers again after it was unavailable (with the info line), with how long it was down. */
  onReachableAgain?: (downMs: number) => void;
}

/** Store methods that are retried: the data calls. Subscriptions (`onJobQueued`, `onJobChanged`) and `close` are not. */
const RETRIED = new Set<string>([
  'insertJob',
  'getJob',
  'getJobAndLogCount',
  'listJobs',
  'queuedJobs',
  'updateJob',
  'compareAndSetJob',
  'claimJobs',
  'insertWorker',
  'getWorker',
  'listWorkers',
  'listWorkersAndQueue',
  'updateWorker',
  'addRunningJobs',
  'removeRunningJobs',
  'appendLogs',
  'readLogs',
  'appendLogBatch',
  'readLogBatches',
  'saveToken',
  'consumeToken',
  'appendAudit',
  'listAudit',
  'deleteFinishedJobs',
]);

function isUnavailable(error: unknown): boolean {
  return HodeiError.isInstance(error) && error.code === 'UNAVAILABLE';
}

/** A transaction that lost a race (serialization failure, deadlock): retried, but the store is not down. */
function isAborted(error: unknown): boolean {
  return HodeiError.isInstance(error) && error.code === 'ABORTED';
}

/**
 * Wraps a store so that a call failing with `UNAVAILABLE` (connection refused or lost, timeout) is retried
 * with exponential backoff (100 ms doubling to 2 s) for up to a minute instead of failing the engine's work.
 * One `warn` line is logged when the store becomes unreachable and one `info` line when it answers again,
 * however many calls wait meanwhile. A call failing with `ABORTED` (a serialization failure or deadlock) is
 * retried the same way without those lines: the store is up. Other errors (`CONFLICT`, `INVALID_ARGUMENT`,
 * `CLOSED`, `INTERNAL`) pass through.
 *
 * A call whose connection broke after the database committed it is in doubt: its retry may find the work
 * done. `insertJob` handles that (a `CONFLICT` on a retry means the first attempt landed). A compare-and-set
 * `updateJob` (or `compareAndSetJob`) does not match again: the engine then re-reads the job and recognises its own assignment,
 * start, re-queue and result (or failure/cancellation) by the state, worker, lease epoch and the timestamp
 * that write set (`assignedAt`, `startedAt`, `notBefore`, `completedAt`), and carries on as if it had
 * matched; a retried `claimJobs` returns the jobs its first attempt took (it is idempotent per worker and claim
 * time), and `addRunningJobs` and `removeRunningJobs` may simply run again (a retried add finds its ids listed, a
 * retried removal finds them gone); other writes (`updateWorker`, tokens) are not recognised. An `appendLogs` retried that way may store
 * its batch twice, so the engine appends log lines through the unwrapped store.
 */
export function withStoreRetry(store: Store, options: StoreRetryOptions): Store {
  const minDelayMs = options.minDelayMs ?? 100;
  const maxDelayMs = options.maxDelayMs ?? 2_000;
  const giveUpAfterMs = options.giveUpAfterMs ?? 60_000;
  const { logger } = options;
  let outageSince: number | undefined;

  const retried = (name: string, method: (...args: unknown[]) => Promise<unknown>) =>
    async (...args: unknown[]): Promise<unknown> => {
      const started = Date.now();
      let delayMs = minDelayMs;
      let failedBefore = false;
      for (;;) {
        try {
          const result = await method.apply(store, args);
          if (outageSince !== undefined) {
            const downMs = Date.now() - outageSince;
            logger.info({ operation: name, downMs }, `store ${store.name} is reachable again`);
            outageSince = undefined;
            options.onReachableAgain?.(downMs);
          }
          return result;
        } catch (error) {
          if (failedBefore && name === 'insertJob' && HodeiError.isInstance(error) && error.code === 'CONFLICT') {
            return undefined; // the attempt that lost its connection had committed the row
          }
          const aborted = isAborted(error);
          if (!aborted && !isUnavailable(error)) throw error;
          if (Date.now() - started + delayMs > giveUpAfterMs) {
            const why = aborted ? `${name} still aborted (${(error as Error).message})` : `store ${store.name} still unavailable`;
            logger.error({ err: error, operation: name }, `${why} after ${Date.now() - started} ms: giving up on ${name}`);
            throw error;
          }
          if (!aborted && outageSince === undefined) {
            outageSince = Date.now();
            logger.warn(
              { err: error, operation: name },
              `store ${store.name} unavailable (${(error as Error).message}): retrying store calls with backoff up to ${maxDelayMs} ms for ${giveUpAfterMs} ms`,
            );
          }
          failedBefore = true;
          await new Promise((resolve) => setTimeout(resolve, delayMs));
          delayMs = Math.min(maxDelayMs, delayMs * 2);
        }
      }
    };

  const wrapped = new Map<string, unknown>();
  return new Proxy(store, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof property !== 'string' || typeof value !== 'function') return value;
      let cached = wrapped.get(property);
      if (!cached) {
        const method = value as (...args: unknown[]) => Promise<unknown>;
        cached = RETRIED.has(property) ? retried(property, method) : method.bind(target);
        wrapped.set(property, cached);
      }
      return cached;
    },
  });
}
