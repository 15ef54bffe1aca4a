/**
 * Wakes whoever waits on a job when it changes (new log lines, new state). Waiters read the store again
 * after waking, so a slow reader never makes the writer buffer: the store is the buffer.
 */
export class ChangeNotifier {
  private readonly waiters = new Map<string, { promise: Promise<void>; resolve: () => void }>();

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

  /** Wakes everyone waiting on `key`. */
  notify(key: string): void {
    const entry = this.waiters.get(key);
    if (entry) {
      this.waiters.delete(key);
      entry.resolve();
    }
  }

  /** Wakes every waiter (used at shutdown). */
  notifyAll(): void {
    for (const key of [...this.waiters.keys()]) this.notify(key);
  }
}
