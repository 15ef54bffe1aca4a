import { LogStream, unpackLogLines, type LogEntry } from '@hodei/core/protocol';
import { describe, expect, it } from 'vitest';
import { LogBatcher } from '../src/log-batcher';

describe('LogBatcher', () => {
  it('numbers lines from 1 and flushes on entry count', () => {
    const batches: LogEntry[][] = [];
    const batcher = new LogBatcher((batch) => batches.push(unpackLogLines(batch)) > 0, { maxBatchEntries: 3, flushDelayMs: 1000 });
    for (let i = 0; i < 7; i++) batcher.add(LogStream.LOG_STREAM_STDOUT, `l${i}`);
    expect(batches.map((batch) => batch.length)).toEqual([3, 3]);
    batcher.close();
    expect(batches.flat().map((entry) => entry.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(batches.flat().every((entry) => Math.abs(entry.timestampMs - Date.now()) < 5000)).toBe(true);
    batcher.add(LogStream.LOG_STREAM_STDOUT, 'after close');
    expect(batches.flat()).toHaveLength(7);
  });

  it('flushes on size', () => {
    const batches: LogEntry[][] = [];
    const batcher = new LogBatcher((batch) => batches.push(unpackLogLines(batch)) > 0, { maxBatchBytes: 10, flushDelayMs: 1000 });
    batcher.add(LogStream.LOG_STREAM_STDOUT, '12345');
    expect(batches).toHaveLength(0);
    batcher.add(LogStream.LOG_STREAM_STDERR, '67890');
    expect(batches).toHaveLength(1);
  });

  it('flushes a small batch after the delay', async () => {
    const batches: LogEntry[][] = [];
    const batcher = new LogBatcher((batch) => batches.push(unpackLogLines(batch)) > 0, { flushDelayMs: 5 });
    batcher.add(LogStream.LOG_STREAM_SYSTEM, 'a');
    batcher.add(LogStream.LOG_STREAM_SYSTEM, 'b');
    expect(batches).toHaveLength(0);
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(batches).toEqual([[expect.objectContaining({ text: 'a', seq: 1 }), expect.objectContaining({ text: 'b', seq: 2 })]]);
  });

  it('holds a line added without `soon` for the next batch, and end() returns the last batch instead of sending it', async () => {
    const batches: LogEntry[][] = [];
    const batcher = new LogBatcher((batch) => batches.push(unpackLogLines(batch)) > 0, { flushDelayMs: 5 });
    batcher.add(LogStream.LOG_STREAM_SYSTEM, '$ header', false);
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(batches).toEqual([]);
    batcher.add(LogStream.LOG_STREAM_STDOUT, 'first output');
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(batches.map((batch) => batch.map((entry) => `${entry.seq}:${entry.text}`))).toEqual([['1:$ header', '2:first output']]);
    batcher.add(LogStream.LOG_STREAM_STDOUT, 'last');
    const rest = batcher.end();
    expect(unpackLogLines(rest).map((entry) => `${entry.seq}:${entry.text}`)).toEqual(['3:last']);
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(batches).toHaveLength(1);
    expect(batcher.end()).toBeUndefined();
  });

  it('numbers from firstSeq (a later attempt continues after the lines of earlier ones)', () => {
    const batches: LogEntry[][] = [];
    const batcher = new LogBatcher((batch) => batches.push(unpackLogLines(batch)) > 0, { firstSeq: 41, flushDelayMs: 1000 });
    batcher.add(LogStream.LOG_STREAM_STDOUT, 'a');
    batcher.add(LogStream.LOG_STREAM_STDERR, 'b');
    batcher.close();
    expect(batches.flat()).toEqual([
      expect.objectContaining({ seq: 41, stream: LogStream.LOG_STREAM_STDOUT, text: 'a' }),
      expect.objectContaining({ seq: 42, stream: LogStream.LOG_STREAM_STDERR, text: 'b' }),
    ]);
    expect(batcher.lastSeq).toBe(42);
  });

  it('signals a pause once when the sink is full, until resumed', () => {
    let pauses = 0;
    const batcher = new LogBatcher(() => false, { maxBatchEntries: 1 }, () => pauses++);
    batcher.add(LogStream.LOG_STREAM_STDOUT, 'a');
    batcher.add(LogStream.LOG_STREAM_STDOUT, 'b');
    expect(batcher.paused).toBe(true);
    expect(pauses).toBe(1);
    batcher.resume();
    expect(batcher.paused).toBe(false);
    batcher.add(LogStream.LOG_STREAM_STDOUT, 'c');
    expect(pauses).toBe(2);
  });
});

describe('LogBatcher output cap', () => {
  function capped(lines: number, options: { maxJobBytes: number; tailBytes: number }) {
    const sent: LogEntry[] = [];
    const batcher = new LogBatcher((batch) => (sent.push(...unpackLogLines(batch)), true), options);
    for (let index = 1; index <= lines; index++) batcher.add(LogStream.LOG_STREAM_STDOUT, `line ${String(index).padStart(4, '0')}`);
    batcher.close();
    return sent;
  }

  it('keeps the head and the tail, says what it dropped, and numbers lines contiguously', () => {
    // Each line is 9 characters: 10 lines fit the head, 5 lines fit the tail.
    const sent = capped(100, { maxJobBytes: 90, tailBytes: 45 });
    const texts = sent.map((entry) => entry.text);
    expect(texts.slice(0, 10)).toEqual(Array.from({ length: 10 }, (_, i) => `line ${String(i + 1).padStart(4, '0')}`));
    expect(texts[10]).toBe('hodei: output truncated: 85 lines (765 characters) omitted after the first 90 characters; the end of the output follows');
    expect(sent[10]!.stream).toBe(LogStream.LOG_STREAM_SYSTEM);
    expect(texts.slice(11)).toEqual(['line 0096', 'line 0097', 'line 0098', 'line 0099', 'line 0100']);
    expect(sent.map((entry) => entry.seq)).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
  });

  it('keeps the order of the lines around the cap: a short line that would still fit does not overtake a held one', () => {
    const sent: LogEntry[] = [];
    const batcher = new LogBatcher((batch) => (sent.push(...unpackLogLines(batch)), true), { maxJobBytes: 20, tailBytes: 100 });
    for (const text of ['x'.repeat(15), 'L'.repeat(10), 'a', 'b']) batcher.add(LogStream.LOG_STREAM_STDOUT, text);
    batcher.close();
    expect(sent.map((entry) => entry.text)).toEqual(['x'.repeat(15), 'L'.repeat(10), 'a', 'b']);
    expect(sent.map((entry) => entry.seq)).toEqual([1, 2, 3, 4]);
  });

  it('sends everything when the output fits', () => {
    expect(capped(10, { maxJobBytes: 90, tailBytes: 45 })).toHaveLength(10);
  });

  it('stays bounded for a long output', () => {
    const sent = capped(200_000, { maxJobBytes: 9_000, tailBytes: 900 });
    // Head: 1,000 lines of 9 characters; tail: the last 81 lines of 11 characters ("line 200000").
    expect(sent).toHaveLength(1_000 + 1 + 81);
    expect(sent.at(-1)!.text).toBe('line 200000');
  });
});
