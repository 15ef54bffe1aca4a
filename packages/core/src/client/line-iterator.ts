import type { LogLine, LogLineBatch, LogStreamName } from '../ports/store';
import { logLineBatchCount } from '../store/log-line-batch';

/**
 * The lines of a stream of packed batches, one at a time, without an async step per line: a line of a batch
 * already received is made when asked for (one object and its text, nothing per line ahead of time) and
 * handed out through an already-resolved promise; only an exhausted batch waits for the next one.
 */
export class LineIterator implements AsyncGenerator<LogLine, void, undefined> {
  private batch: LogLineBatch | undefined;
  private index = 0;
  private count = 0;
  /** Where the next line's text starts in `batch.text`. */
  private offset = 0;
  /** The previous line's timestamp (the batch's first timestamp before its first line). */
  private timestamp = 0;
  /** The stream of every line of the batch, when it has one entry for all. */
  private stream: LogStreamName | undefined;
  private refilling: Promise<IteratorResult<LogLine, void>> | undefined;

  constructor(private readonly batches: AsyncGenerator<LogLineBatch, void, undefined>) {}

  next(): Promise<IteratorResult<LogLine, void>> {
    if (this.index < this.count) return Promise.resolve({ done: false, value: this.take() });
    this.refilling ??= this.refill().finally(() => (this.refilling = undefined));
    return this.refilling;
  }

  async return(): Promise<IteratorResult<LogLine, void>> {
    this.use(undefined);
    await this.batches.return(undefined);
    return { done: true, value: undefined };
  }

  async throw(error: unknown): Promise<IteratorResult<LogLine, void>> {
    this.use(undefined);
    await this.batches.throw(error);
    return { done: true, value: undefined };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private use(batch: LogLineBatch | undefined): void {
    this.batch = batch;
    this.index = 0;
    // The wire mapping cut every array of the batch to one line count (`logLineBatchFromWire`).
    this.count = batch ? logLineBatchCount(batch) : 0;
    this.offset = 0;
    this.timestamp = batch?.firstTimestamp ?? 0;
    this.stream = batch?.streams.length === 1 ? batch.streams[0] : undefined;
  }

  /** The next line of the current batch (there is one). */
  private take(): LogLine {
    const batch = this.batch!;
    const index = this.index++;
    const start = this.offset;
    this.offset = start + batch.textLengths[index]!;
    this.timestamp += batch.timestampDeltas[index]!;
    return { seq: batch.firstSeq + index, timestamp: this.timestamp, stream: this.stream ?? batch.streams[index]!, text: batch.text.slice(start, this.offset) };
  }

  private async refill(): Promise<IteratorResult<LogLine, void>> {
    for (;;) {
      const next = await this.batches.next();
      if (next.done) {
        this.use(undefined);
        return { done: true, value: undefined };
      }
      this.use(next.value);
      if (this.count > 0) return { done: false, value: this.take() };
    }
  }
}
