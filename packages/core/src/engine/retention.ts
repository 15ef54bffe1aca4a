import { invalidArgument } from '../domain/errors';
import { parseDuration } from '../domain/duration';
import type { Clock } from '../ports/clock';
import type { Logger } from '../ports/logger';
import type { Store } from '../ports/store';

/** How long finished jobs are kept by default: 7 days. */
export const DEFAULT_RETENTION_MS = 7 * 86_400_000;

/** Finished jobs deleted per sweep at most (with their log lines). */
export const RETENTION_BATCH = 500;

/**
 * Reads the `retention` option: a duration (`'7d'`, `'12h'`, or milliseconds as a number), or `false` /
 * `'off'` to keep finished jobs forever. `undefined` means the default, 7 days. Returns milliseconds, or
 * `undefined` for off. Throws `INVALID_ARGUMENT` (field `retention`) otherwise.
 */
export function parseRetention(value: string | number | false | undefined): number | undefined {
  if (value === undefined) return DEFAULT_RETENTION_MS;
  if (value === false || value === 'off') return undefined;
  const ms = typeof value === 'number' ? value : typeof value === 'string' ? parseDuration(value, 'retention') : Number.NaN;
  if (!Number.isFinite(ms) || ms <= 0) {
    throw invalidArgument('retention', `must be a positive duration such as '7d', or 'off'; got ${String(value)}`);
  }
  return ms;
}

/** What the sweeper needs. */
export interface RetentionSweeperOptions {
  /** The store to sweep; a store without `deleteFinishedJobs` makes the sweeper a no-op. */
  store: Store;
  /** Source of "now" for the cut-off and of the timers between sweeps. */
  clock: Clock;
  /** Where a sweep's deletions (info) and failures (warn) are reported. */
  logger: Logger;
  /** Finished jobs older than this (by completion time) are deleted. */
  maxAgeMs: number;
  /** Between sweeps; default a tenth of `maxAgeMs`, between 1 s and 5 min. */
  intervalMs?: number;
  /** Jobs deleted per sweep at most; default `RETENTION_BATCH`. */
  batchSize?: number;
}

/**
 * Deletes finished jobs (and their log lines) older than the retention period, periodically and in bounded
 * batches so one sweep never holds the database for long. A full batch schedules the next sweep after a
 * second rather than a whole interval, so a backlog drains without one huge statement. Does nothing with a
 * store that has no `deleteFinishedJobs`.
 */
export class RetentionSweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private readonly intervalMs: number;
  private readonly batchSize: number;

  constructor(private readonly options: RetentionSweeperOptions) {
    this.intervalMs = options.intervalMs ?? Math.min(300_000, Math.max(1_000, Math.floor(options.maxAgeMs / 10)));
    this.batchSize = options.batchSize ?? RETENTION_BATCH;
  }

  /** Schedules the first sweep (soon after start) and the following ones. */
  start(): void {
    if (!this.options.store.deleteFinishedJobs) return;
    this.schedule(Math.min(this.intervalMs, 1_000));
  }

  /** Stops sweeping and waits for a sweep in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** One sweep: deletes at most one batch; returns how many jobs it deleted. */
  async sweep(): Promise<number> {
    const { store, clock, logger, maxAgeMs } = this.options;
    const deleted = (await store.deleteFinishedJobs?.(clock.now() - maxAgeMs, this.batchSize)) ?? 0;
    if (deleted > 0) logger.info({ deleted, maxAgeMs }, `retention: deleted ${deleted} finished jobs and their log lines`);
    return deleted;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.sweep().then(
        (deleted) => this.schedule(deleted >= this.batchSize ? 1_000 : this.intervalMs),
        (error: unknown) => {
          this.options.logger.warn({ err: error }, 'retention sweep failed; retrying at the next interval');
          this.schedule(this.intervalMs);
        },
      );
    }, delayMs);
    this.timer.unref();
  }
}
