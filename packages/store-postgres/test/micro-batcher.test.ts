import { describe, expect, it } from 'vitest';
import { MicroBatcher, roundsByKey, settleEach, type Settled } from '../src/micro-batcher';

/** A batcher whose end-of-turn flush runs only when the test calls `turnEnds()`. */
function manualBatcher<I, O>(run: (items: I[]) => Promise<Settled<O>[]>, maxBatch?: number, maxInFlight?: number) {
  const flushes: (() => void)[] = [];
  const batches: I[][] = [];
  const batcher = new MicroBatcher<I, O>({
    maxBatch,
    maxInFlight,
    schedule: (flush) => flushes.push(flush),
    run: (items) => {
      batches.push(items);
      return run(items);
    },
  });
  const turnEnds = () => {
    for (const flush of flushes.splice(0)) flush();
  };
  return { batcher, batches, turnEnds };
}

const double = (items: number[]) => Promise.resolve(items.map((item) => ({ value: item * 2 })));

describe('MicroBatcher', () => {
  it('runs the calls of one turn as one batch and gives each caller its own result', async () => {
    const { batcher, batches, turnEnds } = manualBatcher(double);
    const results = [batcher.add(1), batcher.add(2), batcher.add(3)];
    expect(batches).toEqual([]);
    turnEnds();
    expect(await Promise.all(results)).toEqual([2, 4, 6]);
    expect(batches).toEqual([[1, 2, 3]]);
  });

  it('starts a new batch for calls made after the turn ended', async () => {
    const { batcher, batches, turnEnds } = manualBatcher(double);
    const first = batcher.add(1);
    turnEnds();
    const second = batcher.add(2);
    turnEnds();
    expect([await first, await second]).toEqual([2, 4]);
    expect(batches).toEqual([[1], [2]]);
  });

  it('runs a full batch at once, before the turn ends', async () => {
    const { batcher, batches, turnEnds } = manualBatcher(double, 2);
    const results = [batcher.add(1), batcher.add(2), batcher.add(3)];
    expect(batches).toEqual([[1, 2]]);
    turnEnds();
    expect(await Promise.all(results)).toEqual([2, 4, 6]);
    expect(batches).toEqual([[1, 2], [3]]);
  });

  it('rejects only the caller whose item failed', async () => {
    const { batcher, turnEnds } = manualBatcher<number, number>((items) =>
      Promise.resolve(items.map((item) => (item === 2 ? { error: new Error('bad 2') } : { value: item }))),
    );
    const results = Promise.allSettled([batcher.add(1), batcher.add(2), batcher.add(3)]);
    turnEnds();
    expect(await results).toEqual([
      { status: 'fulfilled', value: 1 },
      { status: 'rejected', reason: new Error('bad 2') },
      { status: 'fulfilled', value: 3 },
    ]);
  });

  it('rejects every caller of a batch whose run throws, and only them', async () => {
    let fail = true;
    const { batcher, turnEnds } = manualBatcher<number, number>((items) =>
      fail ? Promise.reject(new Error('down')) : double(items),
    );
    const failed = Promise.allSettled([batcher.add(1), batcher.add(2)]);
    turnEnds();
    expect((await failed).map((result) => result.status)).toEqual(['rejected', 'rejected']);
    fail = false;
    const next = batcher.add(3);
    turnEnds();
    expect(await next).toBe(6);
  });

  it('drain() runs what is queued and waits for batches in flight', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const settled: number[] = [];
    const { batcher } = manualBatcher<number, number>(async (items) => {
      await gate;
      return items.map((value) => ({ value }));
    });
    void batcher.add(1).then((value) => settled.push(value));
    const drained = batcher.drain();
    await Promise.resolve();
    expect(settled).toEqual([]);
    release();
    await drained;
    expect(settled).toEqual([1]);
  });

  /** A run that holds each batch until the test releases it (in order); `releaseNext()` settles the oldest. */
  function gatedRun() {
    const gates: (() => void)[] = [];
    const run = async (items: number[]) => {
      await new Promise<void>((resolve) => gates.push(resolve));
      return items.map((value) => ({ value: value * 2 }));
    };
    const releaseNext = async () => {
      gates.shift()!();
      // Let the batch settle its callers and the batcher start what waited.
      for (let tick = 0; tick < 5; tick++) await Promise.resolve();
    };
    return { run, releaseNext };
  }

  it('with maxInFlight, queues calls while that many batches run, then runs them as one batch', async () => {
    const { run, releaseNext } = gatedRun();
    const { batcher, batches, turnEnds } = manualBatcher<number, number>(run, 500, 1);
    const first = batcher.add(1);
    turnEnds();
    const later = [batcher.add(2), batcher.add(3)];
    turnEnds();
    const last = batcher.add(4);
    turnEnds();
    // One batch in flight: the three calls made meanwhile wait, across turns.
    expect(batches).toEqual([[1]]);
    await releaseNext();
    expect(await first).toBe(2);
    expect(batches).toEqual([[1], [2, 3, 4]]);
    await releaseNext();
    expect(await Promise.all([...later, last])).toEqual([4, 6, 8]);
    // Nothing in flight: a call runs at the end of its turn, as without a limit.
    const alone = batcher.add(5);
    turnEnds();
    expect(batches).toEqual([[1], [2, 3, 4], [5]]);
    await releaseNext();
    expect(await alone).toBe(10);
  });

  it('with maxInFlight, splits what waited into batches of maxBatch, and drain() runs them all at once', async () => {
    const { run, releaseNext } = gatedRun();
    const { batcher, batches, turnEnds } = manualBatcher<number, number>(run, 2, 1);
    const results = [1, 2, 3, 4, 5].map((item) => batcher.add(item));
    turnEnds();
    expect(batches).toEqual([[1, 2]]);
    await releaseNext();
    expect(batches).toEqual([[1, 2], [3, 4]]);
    // drain() (a closing store) starts what still waits whatever is in flight.
    const drained = batcher.drain();
    expect(batches).toEqual([[1, 2], [3, 4], [5]]);
    await releaseNext();
    await releaseNext();
    await drained;
    expect(await Promise.all(results)).toEqual([2, 4, 6, 8, 10]);
  });

  it('flushes at the end of the real event-loop turn by default', async () => {
    const batches: number[][] = [];
    const batcher = new MicroBatcher<number, number>({
      run: (items) => {
        batches.push(items);
        return double(items);
      },
    });
    // Callers resumed by the same promise, each after a few awaits of its own, still share a batch.
    const start = Promise.resolve();
    const callers = [1, 2, 3].map(async (item) => {
      await start;
      await Promise.resolve();
      return batcher.add(item);
    });
    expect(await Promise.all(callers)).toEqual([2, 4, 6]);
    expect(batches).toEqual([[1, 2, 3]]);
  });
});

describe('roundsByKey', () => {
  it('puts the n-th item of a key in round n, keeping call order', () => {
    const items = [
      { id: 'a', n: 1 },
      { id: 'b', n: 2 },
      { id: 'a', n: 3 },
      { id: 'c', n: 4 },
      { id: 'a', n: 5 },
      { id: 'b', n: 6 },
    ];
    expect(roundsByKey(items, (item) => item.id).map((round) => round.map((item) => item.n))).toEqual([
      [1, 2, 4],
      [3, 6],
      [5],
    ]);
  });

  it('returns no rounds for no items', () => {
    expect(roundsByKey([], String)).toEqual([]);
  });
});

describe('settleEach', () => {
  const conflict = new Error('conflict on 2');
  /** All-or-nothing, like one SQL statement: fails when any item is 2. */
  const statement = (items: readonly number[]) =>
    items.includes(2) ? Promise.reject(conflict) : Promise.resolve(items.map((item) => item * 10));

  it('returns every value when the statement succeeds', async () => {
    expect(await settleEach([1, 3], statement, () => true)).toEqual([{ value: 10 }, { value: 30 }]);
  });

  it('retries item by item when the error may belong to one item', async () => {
    expect(await settleEach([1, 2, 3], statement, (error) => error === conflict)).toEqual([
      { value: 10 },
      { error: conflict },
      { value: 30 },
    ]);
  });

  it('fails every item with an error that is not split', async () => {
    expect(await settleEach([1, 2, 3], statement, () => false)).toEqual([
      { error: conflict },
      { error: conflict },
      { error: conflict },
    ]);
  });
});
