/** One item's outcome in a batch: its value, or the error that belongs to it. */
export type Settled<O> = { value: O } | { error: unknown };

/**
 * Options of a `MicroBatcher`: `run(items)` runs one batch and settles each item (so one item's error need not
 * fail the others); when `run` itself throws, every caller of that batch gets the error.
 */
export interface MicroBatcherOptions<I, O> {
  /** Runs one batch; resolves to one outcome per item, in the items' order. */
  run(items: I[]): Promise<Settled<O>[]>;
  /** The most items in one batch; a full queue is run at once. Default 500. */
  maxBatch?: number;
  /**
   * The most batches in flight at once (default: no limit). At the limit, calls queue up and the queue runs as
   * one batch as soon as a batch in flight settles: under load, fewer and larger batches.
   */
  maxInFlight?: number;
  /**
   * With `maxInFlight`: the longest calls wait at the limit (default: no bound). Past it, what is queued runs
   * whatever is in flight, so a batch that does not settle (a lock held elsewhere, a hung connection) delays
   * the calls made after it by this much, not until it settles.
   */
  maxWaitMs?: number;
  /** Schedules the end-of-turn flush; default `setImmediate`. Tests pass their own. */
  schedule?(flush: () => void): void;
}

interface Pending<I, O> {
  item: I;
  resolve(value: O): void;
  reject(error: unknown): void;
}

/**
 * Coalesces calls made close together into one batch: `add(item)` queues the item and returns a promise of
 * its own result; the queue is run as one batch when the current turn of the event loop ends (after every
 * pending promise callback, so calls issued by callers resumed together land in the same batch) or as soon
 * as it holds `maxBatch` items. Several batches may be in flight at once (at most `maxInFlight`).
 */
export class MicroBatcher<I, O> {
  private queue: Pending<I, O>[] = [];
  private scheduled = false;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly maxBatch: number;
  private readonly maxInFlight: number;
  private readonly schedule: (flush: () => void) => void;
  /** Runs the queue past the limit once calls have waited `maxWaitMs` at it. */
  private waitTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: MicroBatcherOptions<I, O>) {
    this.maxBatch = Math.max(1, options.maxBatch ?? 500);
    this.maxInFlight = Math.max(1, options.maxInFlight ?? Number.POSITIVE_INFINITY);
    this.schedule = options.schedule ?? ((flush) => void setImmediate(flush));
  }

  /** Queues `item`; resolves to its result (or rejects with its error) once its batch has run. */
  add(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (this.queue.length >= this.maxBatch) {
        this.flush();
      } else if (!this.scheduled) {
        this.scheduled = true;
        this.schedule(() => {
          this.scheduled = false;
          this.flush();
        });
      }
    });
  }

  /**
   * Runs whatever is queued now, as batches of at most `maxBatch`, while fewer than `maxInFlight` are in flight
   * (a no-op when nothing is queued). With `ignoreLimit`, runs all of it whatever is in flight (a closing store
   * starts every pending call while it is still open).
   */
  flush(ignoreLimit = false): void {
    while (this.queue.length > 0 && (ignoreLimit || this.inFlight.size < this.maxInFlight)) {
      const batch = this.queue.length > this.maxBatch ? this.queue.splice(0, this.maxBatch) : this.queue;
      if (batch === this.queue) this.queue = [];
      const settling = this.settle(batch);
      this.inFlight.add(settling);
      void settling.finally(() => {
        this.inFlight.delete(settling);
        // What queued up while the limit held runs now (without a limit nothing waits: calls made this turn run
        // at its end, as one batch).
        if (this.maxInFlight !== Number.POSITIVE_INFINITY) this.flush();
      });
    }
    if (this.queue.length === 0) {
      clearTimeout(this.waitTimer);
      this.waitTimer = undefined;
    } else if (this.waitTimer === undefined && this.options.maxWaitMs !== undefined) {
      this.waitTimer = setTimeout(() => {
        this.waitTimer = undefined;
        this.flush(true);
      }, this.options.maxWaitMs);
      this.waitTimer.unref();
    }
  }

  /** Runs what is queued and waits until every batch in flight has settled its callers. */
  async drain(): Promise<void> {
    this.flush(true);
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  private async settle(batch: Pending<I, O>[]): Promise<void> {
    let outcomes: Settled<O>[];
    try {
      outcomes = await this.options.run(batch.map((pending) => pending.item));
    } catch (error) {
      for (const pending of batch) pending.reject(error);
      return;
    }
    batch.forEach((pending, index) => {
      const outcome = outcomes[index];
      if (!outcome) pending.reject(new Error('micro-batcher: the batch returned no outcome for this item'));
      else if ('error' in outcome) pending.reject(outcome.error);
      else pending.resolve(outcome.value);
    });
  }
}

/**
 * Runs `items` through `statement` at once; if that fails with an error `splitOn` accepts (one that may
 * belong to a single item, such as a duplicate key), runs each item on its own, in order, so each learns its
 * own outcome exactly as unbatched calls would. Sound only when a failed `statement` changed nothing (one
 * atomic SQL statement).
 */
export async function settleEach<I, O>(
  items: readonly I[],
  statement: (items: readonly I[]) => Promise<O[]>,
  splitOn: (error: unknown) => boolean,
): Promise<Settled<O>[]> {
  try {
    return (await statement(items)).map((value) => ({ value }));
  } catch (error) {
    if (items.length === 1 || !splitOn(error)) return items.map(() => ({ error }));
  }
  const outcomes: Settled<O>[] = [];
  for (const item of items) {
    try {
      const [value] = await statement([item]);
      outcomes.push({ value: value as O });
    } catch (error) {
      outcomes.push({ error });
    }
  }
  return outcomes;
}

/**
 * Splits `items` into rounds in which no key appears twice, keeping call order: the n-th item with a given
 * key goes to round n. Running the rounds one after another applies repeated updates of one record in the
 * order they were made, as separate calls would.
 */
export function roundsByKey<T>(items: readonly T[], key: (item: T) => string): T[][] {
  const rounds: T[][] = [];
  const seen = new Map<string, number>();
  for (const item of items) {
    const k = key(item);
    const round = seen.get(k) ?? 0;
    seen.set(k, round + 1);
    (rounds[round] ??= []).push(item);
  }
  return rounds;
}
