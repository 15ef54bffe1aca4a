import { LogLinesBuilder, LogStream, type LogLines } from '@hodei/core/protocol';
import { DEFAULT_MAX_JOB_BYTES } from './config';

/** Where packed batches go; returns false when the transport is full and the producer should pause. */
export type LogSink = (lines: LogLines) => boolean;

/** Limits of one batch. */
export interface LogBatcherOptions {
  /** Flush once the batch holds this much text (UTF-16 code units); default 256 KiB. */
  maxBatchBytes?: number;
  /** Flush once the batch holds this many entries; default 8,192 (reached by short lines; longer ones reach `maxBatchBytes` first). */
  maxBatchEntries?: number;
  /** Flush a non-empty batch at most this long after its first line; default 5 ms. */
  flushDelayMs?: number;
  /** Most text of one job sent in full; past it only the tail is kept and sent at the end. Default 32 MiB. */
  maxJobBytes?: number;
  /** How much of the output past `maxJobBytes` is kept (its end). Default 1 MiB. */
  tailBytes?: number;
  /** The seq of the first line (the server's count of the job's stored lines + 1); default 1. */
  firstSeq?: number;
}

/** Rewrites each line before it is sent, e.g. to mask secrets. */
export type LineTransform = (text: string) => string;

export const DEFAULT_MAX_BATCH_BYTES = 256 * 1024;
export const DEFAULT_MAX_BATCH_ENTRIES = 8_192;
export const DEFAULT_FLUSH_DELAY_MS = 5;
export const DEFAULT_TAIL_BYTES = 1024 * 1024;

interface HeldLine {
  stream: LogStream;
  text: string;
  timestampMs: number;
}

/**
 * Numbers a job's lines (seq from 1, contiguous), stamps them, and hands them to the sink in batches: on
 * size, after a short delay (one timer per pending batch, never one per line) and on `close()`. When the
 * sink reports back-pressure, `onPause` is called once; the owner pauses its producers and calls
 * `resume()` once the transport drains.
 */
export class LogBatcher {
  private readonly pending = new LogLinesBuilder();
  private seq: number;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private pausedFlag = false;
  private readonly maxBytes: number;
  private readonly maxEntries: number;
  private readonly delayMs: number;
  private readonly maxJobBytes: number;
  private readonly tailBytes: number;
  private sentBytes = 0;
  /** Lines past the cap: a window over the end of the output, `tailStart` is its first live index. */
  private tail: HeldLine[] = [];
  private tailStart = 0;
  private tailSize = 0;
  private omittedLines = 0;
  private omittedBytes = 0;
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
    this.maxJobBytes = options.maxJobBytes ?? DEFAULT_MAX_JOB_BYTES;
    this.tailBytes = options.tailBytes ?? DEFAULT_TAIL_BYTES;
    this.seq = (options.firstSeq ?? 1) - 1;
  }

  /** True while the sink is full (since the last `send` returned false and until `resume()`). */
  get paused(): boolean {
    return this.pausedFlag;
  }

  /** Sequence number of the last line added (`firstSeq - 1` before the first). */
  get lastSeq(): number {
    return this.seq;
  }

  /** A line went past `maxJobBytes`: the rest of the output goes to the tail window (see `hold`). */
  private capped = false;

  /**
   * Adds one line. With `soon` false it arms no flush timer: it goes with the next batch (a later line's, a
   * `flush()`, or the end), e.g. a header written before the process starts.
   */
  add(stream: LogStream, text: string, soon = true): void {
    if (this.closed) return;
    text = this.transform(text);
    // Once one line is held, every later one is too: a shorter line that would still fit must not overtake it.
    if (this.capped || this.sentBytes + text.length > this.maxJobBytes) {
      this.capped = true;
      return this.hold({ stream, text, timestampMs: Date.now() });
    }
    this.sentBytes += text.length;
    this.append(stream, text, Date.now(), soon);
  }

  /** Keeps a line past the cap in the tail window, dropping the oldest held lines beyond `tailBytes`. */
  private hold(line: HeldLine): void {
    this.tail.push(line);
    this.tailSize += line.text.length;
    while (this.tailSize > this.tailBytes && this.tailStart < this.tail.length) {
      const dropped = this.tail[this.tailStart++]!;
      this.tailSize -= dropped.text.length;
      this.omittedLines += 1;
      this.omittedBytes += dropped.text.length;
    }
    if (this.tailStart > 4096 && this.tailStart * 2 > this.tail.length) {
      this.tail = this.tail.slice(this.tailStart);
      this.tailStart = 0;
    }
  }

  private append(stream: LogStream, text: string, timestampMs: number, soon = true): void {
    this.seq += 1;
    this.pending.add(stream, text, timestampMs);
    if (this.pending.count >= this.maxEntries || this.pending.textSize >= this.maxBytes) {
      this.flush();
    } else if (this.timer === undefined && soon) {
      this.timer = setTimeout(this.flushNow, this.delayMs);
    }
  }

  /** Sends the pending lines now, if any. */
  flush(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.pending.count === 0) return;
    this.send(this.pending.build(this.seq - this.pending.count + 1));
  }

  private send(lines: LogLines): void {
    const accepted = this.sink(lines);
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
    const rest = this.end();
    if (rest !== undefined) this.send(rest);
  }

  /**
   * Accepts no more lines and returns the last batch instead of sending it (the truncation notice and the
   * kept tail included), for the caller to send with the run's result; undefined when nothing is left.
   * Full batches on the way still go to the sink.
   */
  end(): LogLines | undefined {
    if (this.closed) return undefined;
    if (this.omittedLines > 0) {
      const notice = `hodei: output truncated: ${this.omittedLines} lines (${this.omittedBytes} characters) omitted after the first ${this.sentBytes} characters; the end of the output follows`;
      this.append(LogStream.LOG_STREAM_SYSTEM, notice, Date.now(), false);
    }
    for (let index = this.tailStart; index < this.tail.length; index++) {
      const line = this.tail[index]!;
      this.append(line.stream, line.text, line.timestampMs, false);
    }
    this.tail = [];
    this.closed = true;
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    return this.pending.count === 0 ? undefined : this.pending.build(this.seq - this.pending.count + 1);
  }
}
