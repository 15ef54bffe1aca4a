import { describe, expect, it } from 'vitest';
import { Turns } from './serial-queue';

describe('Turns', () => {
  it('lets `limit` holders in at once, the others in the order they came as turns are given back', async () => {
    const turns = new Turns(2);
    const order: string[] = [];
    const holder = async (name: string, until: Promise<void>) => {
      await turns.take();
      order.push(`in ${name}`);
      await until;
      order.push(`out ${name}`);
      turns.give();
    };
    let endA!: () => void;
    let endB!: () => void;
    const a = holder('a', new Promise((resolve) => (endA = resolve)));
    const b = holder('b', new Promise((resolve) => (endB = resolve)));
    const c = holder('c', Promise.resolve());
    const d = holder('d', Promise.resolve());
    await new Promise((resolve) => setImmediate(resolve));
    expect(order).toEqual(['in a', 'in b']);
    endB();
    await b;
    await new Promise((resolve) => setImmediate(resolve));
    expect(order.slice(2)).toEqual(['out b', 'in c', 'out c', 'in d', 'out d']);
    endA();
    await Promise.all([a, c, d]);
    // Every turn given back: two new holders get in at once.
    await turns.take();
    await turns.take();
    let third = false;
    void turns.take().then(() => (third = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(third).toBe(false);
  });
});
