import { describe, expect, it } from 'vitest';
import type { Job } from '../domain/job';
import { ChangeNotifier, KeyWaiter } from './change-notifier';

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe('ChangeNotifier', () => {
  it('wakes a waiter once for the notifications of one turn, and again for a later one', async () => {
    const notifier = new ChangeNotifier();
    let wakes = 0;
    const waitLoop = async (rounds: number) => {
      for (let round = 0; round < rounds; round += 1) {
        await notifier.next('job');
        wakes += 1;
      }
    };
    const waiting = waitLoop(2);
    // The store's announcement of a change and the engine's own, a few promise callbacks apart in one turn
    // (time enough for a woken waiter to wait again): one wake-up.
    notifier.notify('job');
    for (let tick = 0; tick < 5; tick += 1) await Promise.resolve();
    notifier.notify('job');
    await turn();
    await turn();
    expect(wakes).toBe(1);
    notifier.notify('job');
    await waiting;
    expect(wakes).toBe(2);
  });

  it('wakes only the waiters of the key notified', async () => {
    const notifier = new ChangeNotifier();
    const woken: string[] = [];
    void notifier.next('a').then(() => woken.push('a'));
    void notifier.next('b').then(() => woken.push('b'));
    notifier.notify('a');
    await turn();
    await turn();
    expect(woken).toEqual(['a']);
  });

  it('wakes a waiter that starts waiting later in the turn of a notification (one just woken that waits again)', async () => {
    const notifier = new ChangeNotifier();
    const changes: string[] = [];
    const first = notifier.next('job').then(async (change) => {
      changes.push(change);
      // Woken by the state change; the end is notified before this waiter waits again, in the same turn.
      notifier.notify('job', 'any');
      changes.push(await notifier.next('job'));
    });
    notifier.notify('job', 'state');
    await first;
    expect(changes).toEqual(['state', 'any']);
  });

  it('forgets a notification nobody waited on by the end of its turn', async () => {
    const notifier = new ChangeNotifier();
    notifier.notify('job');
    await turn();
    let woken = false;
    void notifier.next('job').then(() => (woken = true));
    await turn();
    await turn();
    expect(woken).toBe(false);
    notifier.notify('job');
    await turn();
    await turn();
    expect(woken).toBe(true);
  });

  it('tells a waiter the widest change notified while it waited', async () => {
    const notifier = new ChangeNotifier();
    const narrow = notifier.next('a');
    notifier.notify('a', 'logs');
    notifier.notify('a', 'state');
    expect(await narrow).toBe('state');
    const wide = notifier.next('a');
    notifier.notify('a', 'any');
    notifier.notify('a', 'logs');
    expect(await wide).toBe('any');
    const unsure = notifier.next('a');
    notifier.notify('a');
    expect(await unsure).toBe('any');
  });

  it('forgets a key once every waiter gave its registration back; one that still waits is woken', async () => {
    const notifier = new ChangeNotifier();
    const leaving = notifier.next('job');
    const staying = notifier.next('job');
    notifier.forget('job', leaving);
    expect(notifier.waitedKeys).toBe(1);
    notifier.notify('job', 'state');
    expect(await staying).toBe('state');
    expect(notifier.waitedKeys).toBe(0);
    // Giving back a registration already woken does not touch a newer one.
    const newer = notifier.next('job');
    notifier.forget('job', staying);
    expect(notifier.waitedKeys).toBe(1);
    notifier.forget('job', newer);
    expect(notifier.waitedKeys).toBe(0);
  });

  it('hands the job as it ended to the waiters a notification of its end wakes, merged with the other notifications of the turn', async () => {
    const notifier = new ChangeNotifier();
    const ended = { id: 'job', state: 'SUCCEEDED' } as Job;
    const waiters = [new KeyWaiter(notifier, 'job'), new KeyWaiter(notifier, 'job')];
    const woken = waiters.map((waiter) => waiter.wait());
    // The store's announcement (no job), the engine's with the job, and new lines, in one turn.
    notifier.notify('job', 'any');
    notifier.notify('job', 'any', ended);
    notifier.notify('job', 'logs');
    expect(await Promise.all(woken)).toEqual(['any', 'any']);
    for (const waiter of waiters) expect(waiter.ended).toBe(ended);
    // The next wake-up without one hands over nothing.
    const again = waiters[0]!.wait();
    notifier.notify('job', 'any');
    expect(await again).toBe('any');
    expect(waiters[0]!.ended).toBeUndefined();
    for (const waiter of waiters) waiter.release();
    expect(notifier.waitedKeys).toBe(0);
  });

  it('hands over no job that has not ended', async () => {
    const notifier = new ChangeNotifier();
    const waiter = new KeyWaiter(notifier, 'job');
    const woken = waiter.wait();
    notifier.notify('job', 'state', { id: 'job', state: 'RUNNING' } as Job);
    expect(await woken).toBe('state');
    expect(waiter.ended).toBeUndefined();
    waiter.release();
  });

  it('notifyAll wakes every waiter at once', async () => {
    const notifier = new ChangeNotifier();
    const woken: string[] = [];
    void notifier.next('a').then(() => woken.push('a'));
    void notifier.next('b').then(() => woken.push('b'));
    notifier.notifyAll();
    // Woken within this turn's promise callbacks, not at its end as a notify() is.
    for (let tick = 0; tick < 3; tick += 1) await Promise.resolve();
    expect(woken.sort()).toEqual(['a', 'b']);
  });
});
