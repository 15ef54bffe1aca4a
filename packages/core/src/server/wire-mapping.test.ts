import { describe, expect, it } from 'vitest';
import { LogStream } from '../protocol';
import { logLineBatchFromWire } from './wire-mapping';

const lines = (firstTimestampMs: number, timestampDeltasMs: number[]) => ({
  firstSeq: 1,
  text: 'ab',
  textLengths: [1, 1],
  firstTimestampMs,
  timestampDeltasMs,
  streams: [LogStream.LOG_STREAM_STDOUT],
});

describe('logLineBatchFromWire', () => {
  it('keeps line times a store can hold', () => {
    expect(logLineBatchFromWire(lines(1_700_000_000_000, [0, 5]))).toMatchObject({ firstTimestamp: 1_700_000_000_000, timestampDeltas: [0, 5] });
  });

  it.each([
    ['NaN', Number.NaN, [0, 5]],
    ['out of range', 1e300, [0, 5]],
    ['negative', -8.64e15, [0, 5]],
    ['a delta that leaves the range', 1_700_000_000_000, [0, 1e300]],
  ])('dates a batch whose line time is %s now, its lines all at once (a peer bug must not fail the store)', (_, first, deltas) => {
    const before = Date.now();
    const batch = logLineBatchFromWire(lines(first, deltas));
    expect(batch.firstTimestamp).toBeGreaterThanOrEqual(before);
    expect(batch.firstTimestamp).toBeLessThanOrEqual(Date.now());
    expect(batch.timestampDeltas).toEqual([0, 0]);
  });
});
