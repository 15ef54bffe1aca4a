import { isTerminalJobState, type Job } from '../domain/job';

/**
 * What a notification says changed about a job, from the narrowest to the widest: new log lines only, a
 * state that is not terminal (the job has not ended), or anything (the job may have ended; also when the
 * notifier cannot tell). A waiter that only needs the end (`wait`) reads the job again on `any` only.
 */
export type JobChange = 'logs' | 'state' | 'any';

const WIDTH: Record<JobChange, number> = { logs: 0, state: 1, any: 2 };

/** The wider of two changes. */
function widest(a: JobChange | undefined, b: JobChange): JobChange {
  return a !== undefined && WIDTH[a] >= WIDTH[b] ? a : b;
}

/** A key's notifications of one turn: the widest change, and the job as it ended when one said so. */
interface Due {
  change: JobChange;
  ended: Job | undefined;
}

/** The ended job a wake-up handed over, by the promise it resolved (read by {@link KeyWaiter.wait}). */
const endings = new WeakMap<Promise<JobChange>, Job>();

/**
 * Wakes whoever waits on a job when it changes (new log lines, new state). Waiters read the store again
 * after waking, so a slow reader never makes the writer buffer: the store is the buffer.
 *
 * A notification wakes its waiters at the end of the current turn of the event loop, so that the
 * notifications of one change made in the same turn (the store's `onJobChanged` announcement and the engine's
 * own) wake them, and make them read the store, once. It also wakes a waiter that starts waiting later in
 * that turn (one just woken that waits again), so a waiter that skips a read after a narrow change never
 * misses the next one. A waiter learns the widest change notified since it started waiting.
 */
export class ChangeNotifier {
  private readonly waiters = new Map<string, { promise: Promise<JobChange>; resolve: (change: JobChange) => void; count: number }>();
  /** Keys notified in this turn, their widest change and ended job, woken by `wakeDue`. */
  private due = new Map<string, Due>();

  /**
   * A promise that resolves at the next `notify(key)`, with the widest change notified until it wakes. Take it
   * before reading, await it after.
   */
  next(key: string): Promise<JobChange> {
    let entry = this.waiters.get(key);
    if (!entry) {
      let resolve!: (change: JobChange) => void;
      const promise = new Promise<JobChange>((done) => (resolve = done));
      entry = { promise, resolve, count: 0 };
      this.waiters.set(key, entry);
    }
    entry.count += 1;
    return entry.promise;
  }

  /**
   * Gives back `promise`, taken from `next(key)` and not to be awaited (the waiter found what it waited for):
   * once every waiter of it gave it back, the key is forgotten. A promise already resolved is ignored.
   */
  forget(key: string, promise: Promise<JobChange>): void {
    const entry = this.waiters.get(key);
    if (entry?.promise !== promise) return;
    entry.count -= 1;
    if (entry.count <= 0) this.waiters.delete(key);
  }

  /**
   * Wakes everyone waiting on `key` (and whoever starts waiting on it before then) at the end of this turn.
   * `change` says what changed; when unsure, `any` (the default). `ended` is the job as its end was just
   * recorded (a terminal state, which never changes again): the waiters this wakes get it (through the
   * `ended` field of the server's `KeyWaiter`), and need not read the job.
   */
  notify(key: string, change: JobChange = 'any', ended?: Job): void {
    if (this.due.size === 0) setImmediate(() => this.wakeDue());
    const due = this.due.get(key);
    const end = ended !== undefined && isTerminalJobState(ended.state) ? ended : undefined;
    this.due.set(key, { change: end ? 'any' : widest(due?.change, change), ended: end ?? due?.ended });
  }

  private wakeDue(): void {
    const due = this.due;
    this.due = new Map();
    for (const [key, { change, ended }] of due) this.wake(key, change, ended);
  }

  private wake(key: string, change: JobChange, ended?: Job): void {
    const entry = this.waiters.get(key);
    if (entry) {
      this.waiters.delete(key);
      if (ended) endings.set(entry.promise, ended);
      entry.resolve(change);
    }
  }

  /** How many keys someone waits on (for diagnostics and tests: waiters that ended leave none). */
  get waitedKeys(): number {
    return this.waiters.size;
  }

  /** Wakes every waiter, with `any` (used at shutdown, and when changes may have been missed). */
  notifyAll(): void {
    for (const key of [...this.waiters.keys()]) this.wake(key, 'any');
  }
}

/**
 * One loop's use of a {@link ChangeNotifier} key: `arm()` before each read of what the key guards, `wait()` after
 * it, `release()` on every way out. Arming twice without a wait keeps one registration, and `release` gives back
 * a registration that will not be awaited, so a loop that ends (or reads again at once) leaves nothing behind.
 * `wake()` is for whoever sees the loop's reason to stop (its client went away) while it may wait.
 */
export class KeyWaiter {
  private taken: Promise<JobChange> | undefined;
  private released = false;
  /**
   * The job as it ended, when the wake-up the last `wait()` returned from handed it over (the engine recorded
   * the end; see {@link ChangeNotifier.notify}); undefined otherwise, and then the job must be read.
   */
  ended: Job | undefined;

  constructor(
    private readonly notifier: ChangeNotifier,
    readonly key: string,
  ) {}

  /** Registers for the key's next notification, unless registered already. */
  arm(): void {
    this.taken ??= this.notifier.next(this.key);
  }

  /** Waits for the notification registered by `arm` (arming first if needed): what changed (see also {@link ended}). */
  async wait(): Promise<JobChange> {
    this.arm();
    const taken = this.taken!;
    this.taken = undefined;
    const change = await taken;
    this.ended = endings.get(taken);
    return change;
  }

  /** Gives back a registration that will not be awaited: the loop has ended. */
  release(): void {
    if (this.taken) this.notifier.forget(this.key, this.taken);
    this.taken = undefined;
    this.released = true;
  }

  /** Wakes the loop (with the key's other waiters) unless it has ended, so that it looks again at why it waits. */
  wake(): void {
    if (!this.released) this.notifier.notify(this.key);
  }
}
