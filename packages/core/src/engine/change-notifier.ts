/**
 * Wakes whoever waits on a job when it changes (new log lines, new state). Waiters read the store again
 * after waking, so a slow reader never makes the writer buffer: the store is the buffer.
 *
 * A notification wakes its waiters at the end of the current turn of the event loop, so that the
 * notifications of one change made in the same turn (the store's `onJobChanged` announcement and the engine's
 * own) wake them, and make them read the store, once.
 */
export class ChangeNotifier {
  private readonly waiters = new Map<string, { promise: Promise<void>; resolve: () => void }>();
  /** Keys notified in this turn, woken by `wakeDue`. */
  private readonly due = new Set<string>();

  /** A promise that resolves at the next `notify(key)`. Take it before reading, await it after. */
  next(key: string): Promise<void> {
    let entry = this.waiters.get(key);
    if (!entry) {
      let resolve!: () => void;
      const promise = new Promise<void>((done) => (resolve = done));
      entry = { promise, resolve };
      this.waiters.set(key, entry);
    }
    return entry.promise;
  }

  /** Wakes everyone waiting on `key` (and whoever starts waiting on it before then) at the end of this turn. */
  notify(key: string): void {
    if (!this.waiters.has(key)) return;
    if (this.due.size === 0) setImmediate(() => this.wakeDue());
    this.due.add(key);
  }

  private wakeDue(): void {
    for (const key of this.due) this.wake(key);
    this.due.clear();
  }

  private wake(key: string): void {
    const entry = this.waiters.get(key);
    if (entry) {
      this.waiters.delete(key);
      entry.resolve();
    }
  }

  /** Wakes every waiter (used at shutdown). */
  notifyAll(): void {
    for (const key of [...this.waiters.keys()]) this.wake(key);
  }
}
