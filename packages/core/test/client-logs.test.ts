import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPlatform, packLogLineBatch, unpackLogLineBatch, type LogLine, type NewLogLine, type Platform } from '../src';
import { idleProvider } from './idle-provider';

const streams = ['stdout', 'stderr', 'system'] as const;
/** `count` lines with mixed streams, texts of varied length (some empty, some non-ASCII) and timestamps. */
function lines(count: number, from = 0): NewLogLine[] {
  return Array.from({ length: count }, (_, index) => ({
    timestamp: 1_700_000_000_000 + (from + index) * 7,
    stream: streams[(from + index) % 3 === 0 ? 1 : 0]!,
    text: (from + index) % 5 === 0 ? '' : `line ${from + index} ${'é🙂'.repeat((from + index) % 4)}`,
  }));
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

describe('client log streaming', () => {
  let platform: Platform;
  let jobId: string;
  let expected: LogLine[];
  beforeAll(async () => {
    platform = await createPlatform({ providers: [idleProvider] });
    jobId = (await platform.client.queue({ name: 'logs', command: 'true' })).id;
    // Three stored batches (one with a single stream), then per-line appends, past the server's read size.
    const stored = [lines(3_000), lines(5, 3_000).map((line) => ({ ...line, stream: 'system' as const })), lines(6_000, 3_005)];
    for (const batch of stored) await platform.store.appendLogBatch!(jobId, packLogLineBatch(batch));
    await platform.store.appendLogs(jobId, lines(1_000, 9_005));
    expected = [...stored.flat(), ...lines(1_000, 9_005)].map((line, index) => ({ seq: index + 1, ...line }));
  });
  afterAll(() => platform.close());

  it('logs() yields every stored line in order, as stored', async () => {
    expect(await collect(platform.client.logs(jobId))).toEqual(expected);
  });

  it('fromSeq starts inside a batch', async () => {
    expect(await collect(platform.client.logs(jobId, { fromSeq: 2_999 }))).toEqual(expected.slice(2_998));
    expect(await collect(platform.client.logs(jobId, { fromSeq: expected.length + 1 }))).toEqual([]);
  });

  it('logBatches() and packedLogs() carry the same lines', async () => {
    expect((await collect(platform.client.logBatches(jobId, { fromSeq: 10 }))).flat()).toEqual(expected.slice(9));
    const packed = await collect(platform.client.packedLogs(jobId, { fromSeq: 10 }));
    expect(packed.length).toBeGreaterThan(1);
    expect(packed.flatMap(unpackLogLineBatch)).toEqual(expected.slice(9));
  });

  it('an abort ends a follow quietly; breaking out of the loop ends it too', async () => {
    const abort = new AbortController();
    let count = 0;
    for await (const line of platform.client.logs(jobId, { follow: true, signal: abort.signal })) {
      count += 1;
      if (line.seq === expected.length) abort.abort();
    }
    expect(count).toBe(expected.length);
    const first: LogLine[] = [];
    for await (const line of platform.client.logs(jobId, { follow: true })) {
      first.push(line);
      if (first.length === 3) break;
    }
    expect(first).toEqual(expected.slice(0, 3));
  });
});
