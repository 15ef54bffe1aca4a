import type { LogEntry, LogStream } from '@hodei/core/protocol';

/** Where batches go; returns false when the transport is full and the producer should pause. */
export type LogSink = (entries: LogEntry[]) => boolean;

/** Limits of one batch. */
export interface LogBatcherOptions {
  /** Flush once the batch holds this much text (UTF-16 code units); default 256 KiB. */
  maxBatchBytes?: number;
  /** Flush once the batch holds this many entries; default 2,000. */
  maxBatchEntries?: number;
  /** Flush a non-empty batch at most this long after its first line; default 5 ms. */
  flushDelayMs?: number;
}

/** Rewrites each line before it is sent, e.g. to mask secrets. */
export type LineTransform = (text: string) => string;

export const DEFAULT_MAX_BATCH_BYTES = 256 * 1024;
export const DEFAULT_MAX_BATCH_ENTRIES = 2_000;
export const DEFAULT_FLUSH_DELAY_MS = 5;

/**
 * Numbers a job's lines (seq from 1, contiguous), stamps them, and hands them to the sink in batches: on
 * size, after a short delay (one timer per pending batch, never one per line) and on `close()`. When the
 * sink reports back-pressure, `onPause` is called once; the owner pauses its producers and calls
 * `resume()` once the transport drains.
 */
export class LogBatcher {
  private entries: LogEntry[] = [];
  private bytes = 0;
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private pausedFlag = false;
  private readonly maxBytes: number;
  private readonly maxEntries: number;
  private readonly delayMs: number;
  private readonly flushNow = () => {
    this.timer = undefined;
    this.flush();
  };

  constructor(
    private readonly sink: LogSink,
    options: LogBatcherOptions = {},
    private readonly onPause: () => void = () => undefined,
    private readonly transform: LineTransform = (text) => text,
  ) {
    this.maxBytes = options.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES;
    this.maxEntries = options.maxBatchEntries ?? DEFAULT_MAX_BATCH_ENTRIES;
    this.delayMs = options.flushDelayMs ?? DEFAULT_FLUSH_DELAY_MS;
  }

  /** True while the sink is full (since the last `send` returned false and until `resume()`). */
  get paused(): boolean {
    return this.pausedFlag;
  }

  /** Sequence number of the last line added (0 before the first). */
  get lastSeq(): number {
    return this.seq;
  }

  /** Adds one line. */
  add(stream: LogStream, text: string): void {
    if (this.closed) return;
    this.seq += 1;
    text = this.transform(text);
    this.entries.push({ seq: this.seq, timestampMs: Date.now(), stream, text });
    this.bytes += text.length;
    if (this.entries.length >= this.maxEntries || this.bytes >= this.maxBytes) {
      this.flush();
    } else if (this.timer === undefined) {
      this.timer = setTimeout(this.flushNow, this.delayMs);
    }
  }

  /** Sends the pending lines now, if any. */
  flush(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.entries.length === 0) return;
    const batch = this.entries;
    this.entries = [];
    this.bytes = 0;
    const accepted = this.sink(batch);
    if (!accepted && !this.pausedFlag) {
      this.pausedFlag = true;
      this.onPause();
    }
  }

  /** The transport drained: producers may go on. */
  resume(): void {
    this.pausedFlag = false;
  }

  /** Flushes what is left and accepts no more lines. */
  close(): void {
    this.flush();
    this.closed = true;
  }
}
