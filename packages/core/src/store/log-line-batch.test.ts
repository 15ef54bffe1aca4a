import { describe, expect, it } from 'vitest';
import type { NewLogLine } from '../ports/store';
import { packLogLineBatch, sliceLogLineBatch, splitLogLineBatch, unpackLogLineBatch } from './log-line-batch';

const written: NewLogLine[] = [
  { timestamp: 1_000, stream: 'stdout', text: 'one' },
  { timestamp: 1_005, stream: 'stderr', text: '' },
  { timestamp: 1_003, stream: 'stdout', text: 'three 🚀' },
  { timestamp: 1_010, stream: 'system', text: 'four' },
];
const batch = { ...packLogLineBatch(written), firstSeq: 7 };
const numbered = written.map((line, index) => ({ seq: 7 + index, ...line }));

describe('log line batches', () => {
  it('unpacks what it packed, numbered from firstSeq', () => {
    expect(unpackLogLineBatch(batch)).toEqual(numbered);
  });

  it('slices any range with its seqs, timestamps, streams and texts', () => {
    for (let start = 0; start <= written.length; start++) {
      for (let end = start; end <= written.length; end++) {
        expect(unpackLogLineBatch(sliceLogLineBatch(batch, start, end))).toEqual(numbered.slice(start, end));
      }
    }
  });

  it('splits by text size without losing or reordering a line, a longer line alone', () => {
    for (const max of [1, 3, 8, 100]) {
      const pieces = splitLogLineBatch(batch, max);
      expect(pieces.flatMap(unpackLogLineBatch)).toEqual(numbered);
      for (const piece of pieces) expect(piece.textLengths.length === 1 || piece.text.length <= max).toBe(true);
    }
  });
});
