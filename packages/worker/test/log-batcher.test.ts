import { LogStream, type LogEntry } from '@hodei/core/protocol';
import { describe, expect, it } from 'vitest';
import { LogBatcher } from '../src/log-batcher';

describe('LogBatcher', () => {
  it('numbers lines from 1 and flushes on entry count', () => {
    const batches: LogEntry[][] = [];
    const batcher = new LogBatcher((batch) => batches.push(batch) > 0, { maxBatchEntries: 3, flushDelayMs: 1000 });
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
    const batcher = new LogBatcher((batch) => batches.push(batch) > 0, { maxBatchBytes: 10, flushDelayMs: 1000 });
    batcher.add(LogStream.LOG_STREAM_STDOUT, '12345');
    expect(batches).toHaveLength(0);
    batcher.add(LogStream.LOG_STREAM_STDERR, '67890');
    expect(batches).toHaveLength(1);
  });

  it('flushes a small batch after the delay', async () => {
    const batches: LogEntry[][] = [];
    const batcher = new LogBatcher((batch) => batches.push(batch) > 0, { flushDelayMs: 5 });
    batcher.add(LogStream.LOG_STREAM_SYSTEM, 'a');
    batcher.add(LogStream.LOG_STREAM_SYSTEM, 'b');
    expect(batches).toHaveLength(0);
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(batches).toEqual([[expect.objectContaining({ text: 'a', seq: 1 }), expect.objectContaining({ text: 'b', seq: 2 })]]);
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
