import type { LogLine } from '../ports/store';

/**
 * The lines of a stream of batches, one at a time, without an async step per line: a line already received
 * is handed out through an already-resolved promise; only an exhausted batch waits for the next one.
 */
export class LineIterator implements AsyncGenerator<LogLine, void, undefined> {
  private batch: LogLine[] = [];
  private index = 0;
  private refilling: Promise<IteratorResult<LogLine, void>> | undefined;

  constructor(private readonly batches: AsyncGenerator<LogLine[], void, undefined>) {}

  next(): Promise<IteratorResult<LogLine, void>> {
    if (this.index < this.batch.length) return Promise.resolve({ done: false, value: this.batch[this.index++]! });
    this.refilling ??= this.refill().finally(() => (this.refilling = undefined));
    return this.refilling;
  }

  async return(): Promise<IteratorResult<LogLine, void>> {
    this.batch = [];
    this.index = 0;
    await this.batches.return(undefined);
    return { done: true, value: undefined };
  }

  async throw(error: unknown): Promise<IteratorResult<LogLine, void>> {
    this.batch = [];
    this.index = 0;
    await this.batches.throw(error);
    return { done: true, value: undefined };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private async refill(): Promise<IteratorResult<LogLine, void>> {
    for (;;) {
      const next = await this.batches.next();
      if (next.done) return { done: true, value: undefined };
      this.batch = next.value;
      this.index = 0;
      if (this.batch.length > 0) return { done: false, value: this.batch[this.index++]! };
    }
  }
}
