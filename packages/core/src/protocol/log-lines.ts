import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { LogLines, LogStream } from './generated/hodei/v1/common';

/** One log line as the wire protocol numbers it: the unpacked view of one line of a `LogLines` batch. */
export interface LogEntry {
  /** The line's number in its job, from 1, contiguous across attempts. */
  seq: number;
  /** ms since the epoch. */
  timestampMs: number;
  /** Where the line came from: stdout, stderr or the platform. */
  stream: LogStream;
  /** The line without its newline. */
  text: string;
}

/**
 * Accumulates consecutive lines into one packed `LogLines` message: the texts are joined once, the
 * lengths, timestamp deltas and streams go into flat number arrays (no object per line).
 */
export class LogLinesBuilder {
  private parts: string[] = [];
  private lengths: number[] = [];
  private deltas: number[] = [];
  private streams: LogStream[] = [];
  private firstTimestamp = 0;
  private lastTimestamp = 0;
  private mixedStreams = false;
  private textLength = 0;

  /** Lines added since the last `build()`. */
  get count(): number {
    return this.lengths.length;
  }

  /** UTF-16 code units of text added since the last `build()`. */
  get textSize(): number {
    return this.textLength;
  }

  /** Appends one line (the next seq). */
  add(stream: LogStream, text: string, timestampMs: number): void {
    const count = this.lengths.length;
    if (count === 0) {
      this.firstTimestamp = timestampMs;
      this.lastTimestamp = timestampMs;
    }
    // Deltas are sint32: a gap past ~24 days (never within one run) is clamped rather than overflowing.
    const delta = Math.max(-0x7fffffff, Math.min(0x7fffffff, Math.round(timestampMs - this.lastTimestamp)));
    this.lastTimestamp += delta;
    this.deltas.push(delta);
    if (count > 0 && stream !== this.streams[count - 1]) this.mixedStreams = true;
    this.streams.push(stream);
    this.parts.push(text);
    this.lengths.push(text.length);
    this.textLength += text.length;
  }

  /** The lines added so far as one message numbered from `firstSeq`; the builder starts over empty. */
  build(firstSeq: number): LogLines {
    const lines: LogLines = {
      firstSeq,
      text: this.parts.join(''),
      textLengths: this.lengths,
      firstTimestampMs: this.firstTimestamp,
      timestampDeltasMs: this.deltas,
      streams: this.mixedStreams ? this.streams : this.streams.slice(0, 1),
    };
    this.parts = [];
    this.lengths = [];
    this.deltas = [];
    this.streams = [];
    this.mixedStreams = false;
    this.textLength = 0;
    return lines;
  }
}

/** Packs entries with consecutive seqs (the first one's seq numbers the batch). */
export function packLogLines(entries: readonly LogEntry[]): LogLines {
  const builder = new LogLinesBuilder();
  for (const entry of entries) builder.add(entry.stream, entry.text, entry.timestampMs);
  return builder.build(entries[0]?.seq ?? 1);
}

/**
 * Visits each line of a packed batch in order, building one value per line with `make`. A batch whose
 * arrays disagree in length (a peer's bug) stops at the shortest, so text is never mis-attributed.
 */
export function mapLogLines<T>(
  lines: LogLines | undefined,
  make: (seq: number, timestampMs: number, stream: LogStream, text: string) => T,
): T[] {
  if (!lines) return [];
  const { text, textLengths, timestampDeltasMs, streams, firstSeq } = lines;
  const count = Math.min(textLengths.length, timestampDeltasMs.length, streams.length === 1 ? Infinity : streams.length);
  const result = new Array<T>(count);
  const single = streams.length === 1 ? streams[0]! : undefined;
  let offset = 0;
  let timestamp = lines.firstTimestampMs;
  for (let index = 0; index < count; index++) {
    const end = offset + textLengths[index]!;
    timestamp += timestampDeltasMs[index]!;
    result[index] = make(firstSeq + index, timestamp, single ?? streams[index]!, text.slice(offset, end));
    offset = end;
  }
  return result;
}

/** The entries of a packed batch. */
export function unpackLogLines(lines: LogLines | undefined): LogEntry[] {
  return mapLogLines(lines, (seq, timestampMs, stream, text) => ({ seq, timestampMs, stream, text }));
}

/** How many lines a packed batch holds. */
export function logLineCount(lines: LogLines | undefined): number {
  if (!lines) return 0;
  return Math.min(lines.textLengths.length, lines.timestampDeltasMs.length, lines.streams.length === 1 ? Infinity : lines.streams.length);
}

/** The empty batch numbered from `firstSeq`. */
export function emptyLogLines(firstSeq: number): LogLines {
  return { firstSeq, text: '', textLengths: [], firstTimestampMs: 0, timestampDeltasMs: [], streams: [] };
}

/**
 * The values of a packed varint field, in an array allocated once at its final size (the generated code
 * pushes them one by one), read as the generated reader's `uint32()`, `int32()` or `sint32()` would.
 */
function readPackedVarints(reader: BinaryReader, type: 'uint32' | 'int32' | 'sint32'): number[] {
  const bytes = reader.bytes();
  let count = 0;
  for (let index = 0; index < bytes.length; index++) if (bytes[index]! < 0x80) count += 1;
  const values = new Array<number>(count);
  let position = 0;
  for (let index = 0; index < count; index++) {
    let value = 0;
    let shift = 0;
    let byte: number;
    do {
      byte = bytes[position++]!;
      if (shift < 32) value |= (byte & 0x7f) << shift;
      shift += 7;
    } while (byte >= 0x80);
    values[index] = type === 'uint32' ? value >>> 0 : type === 'int32' ? value : (value >>> 1) ^ -(value & 1);
  }
  return values;
}

/** `values` followed by a packed run read from `reader` (a field may come in several runs; usually one, kept as read). */
function withPackedVarints(values: number[], reader: BinaryReader, type: 'uint32' | 'int32' | 'sint32'): number[] {
  const read = readPackedVarints(reader, type);
  return values.length === 0 ? read : values.concat(read);
}

/**
 * Decodes a `LogLines` message as ts-proto's generated decoder does (same result, unpacked encodings and
 * unknown fields included), but reads each packed array into an array allocated once at its final size:
 * the generated code pushes value by value, and the arrays' regrowth was a fifth of the bytes a log follow
 * allocated. Installed as `LogLines.decode`, so every message holding a `LogLines` decodes through it.
 */
export function decodeLogLines(input: BinaryReader | Uint8Array, length?: number): LogLines {
  const reader = input instanceof BinaryReader ? input : new BinaryReader(input);
  const end = length === undefined ? reader.len : reader.pos + length;
  const message: LogLines = { firstSeq: 0, text: '', textLengths: [], firstTimestampMs: 0, timestampDeltasMs: [], streams: [] };
  while (reader.pos < end) {
    const tag = reader.uint32();
    switch (tag) {
      case (1 << 3) | WireType.Varint:
        message.firstSeq = reader.uint32();
        continue;
      case (2 << 3) | WireType.LengthDelimited:
        message.text = reader.string();
        continue;
      case (3 << 3) | WireType.LengthDelimited:
        message.textLengths = withPackedVarints(message.textLengths, reader, 'uint32');
        continue;
      case (3 << 3) | WireType.Varint:
        message.textLengths.push(reader.uint32());
        continue;
      case (4 << 3) | WireType.Bit64:
        message.firstTimestampMs = reader.double();
        continue;
      case (5 << 3) | WireType.LengthDelimited:
        message.timestampDeltasMs = withPackedVarints(message.timestampDeltasMs, reader, 'sint32');
        continue;
      case (5 << 3) | WireType.Varint:
        message.timestampDeltasMs.push(reader.sint32());
        continue;
      case (6 << 3) | WireType.LengthDelimited:
        message.streams = withPackedVarints(message.streams, reader, 'int32');
        continue;
      case (6 << 3) | WireType.Varint:
        message.streams.push(reader.int32());
        continue;
    }
    if ((tag & 7) === WireType.EndGroup || tag === 0) break;
    reader.skip(tag & 7, tag >>> 3);
  }
  return message;
}

LogLines.decode = decodeLogLines;
