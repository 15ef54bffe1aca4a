/** Runs async tasks one after another; a failing task does not stop the ones after it. */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task, task);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

/** One {@link SerialQueue} per key, dropped once its tasks are done: tasks of one key run one at a time. */
export class KeyedSerialQueue {
  private readonly queues = new Map<string, { queue: SerialQueue; tasks: number }>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    let entry = this.queues.get(key);
    if (!entry) {
      entry = { queue: new SerialQueue(), tasks: 0 };
      this.queues.set(key, entry);
    }
    const current = entry;
    current.tasks += 1;
    return current.queue.run(task).finally(() => {
      current.tasks -= 1;
      if (current.tasks === 0 && this.queues.get(key) === current) this.queues.delete(key);
    });
  }
}

/**
 * At most `limit` holders at once: `take()` resolves when a turn is free (first come, first served), `give()`
 * frees the turn taken (every `take()` that resolved is followed by one `give()`).
 */
export class Turns {
  private taken = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  async take(): Promise<void> {
    if (this.taken < this.limit) {
      this.taken += 1;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  give(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.taken -= 1;
  }
}
