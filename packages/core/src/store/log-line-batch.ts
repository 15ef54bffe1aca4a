import type { LogLine, LogLineBatch, NewLogLine, NewLogLineBatch } from '../ports/store';

/** How many lines a batch holds. */
export function logLineBatchCount(batch: NewLogLineBatch): number {
  return batch.textLengths.length;
}

/** Packs lines into one batch (no seqs: the store numbers them). */
export function packLogLineBatch(lines: readonly NewLogLine[]): NewLogLineBatch {
  const count = lines.length;
  const texts = new Array<string>(count);
  const textLengths = new Array<number>(count);
  const timestampDeltas = new Array<number>(count);
  const streams = new Array<LogLine['stream']>(count);
  let mixed = false;
  let previous = lines[0]?.timestamp ?? 0;
  for (let index = 0; index < count; index++) {
    const line = lines[index]!;
    texts[index] = line.text;
    textLengths[index] = line.text.length;
    timestampDeltas[index] = line.timestamp - previous;
    previous = line.timestamp;
    streams[index] = line.stream;
    if (index > 0 && line.stream !== streams[index - 1]) mixed = true;
  }
  return {
    text: texts.join(''),
    textLengths,
    firstTimestamp: lines[0]?.timestamp ?? 0,
    timestampDeltas,
    streams: mixed ? streams : streams.slice(0, 1),
  };
}

/** The lines of a batch, one object each, numbered from its `firstSeq`. */
export function unpackLogLineBatch(batch: LogLineBatch): LogLine[] {
  const { text, textLengths, timestampDeltas, streams, firstSeq } = batch;
  const count = textLengths.length;
  const lines = new Array<LogLine>(count);
  const single = streams.length === 1 ? streams[0] : undefined;
  let offset = 0;
  let timestamp = batch.firstTimestamp;
  for (let index = 0; index < count; index++) {
    const end = offset + textLengths[index]!;
    timestamp += timestampDeltas[index]!;
    lines[index] = { seq: firstSeq + index, timestamp, stream: single ?? streams[index]!, text: text.slice(offset, end) };
    offset = end;
  }
  return lines;
}

/** Lines `start` (inclusive) to `end` (exclusive) of a batch, as a batch; the batch itself when that is all of it. */
export function sliceLogLineBatch(batch: LogLineBatch, start: number, end: number): LogLineBatch {
  const count = logLineBatchCount(batch);
  start = Math.max(0, start);
  end = Math.min(count, end);
  if (start === 0 && end === count) return batch;
  let from = 0;
  let timestamp = batch.firstTimestamp;
  for (let index = 0; index < start; index++) from += batch.textLengths[index]!;
  for (let index = 0; index <= start && index < count; index++) timestamp += batch.timestampDeltas[index]!;
  let to = from;
  for (let index = start; index < end; index++) to += batch.textLengths[index]!;
  const timestampDeltas = batch.timestampDeltas.slice(start, Math.max(start, end));
  if (timestampDeltas.length > 0) timestampDeltas[0] = 0;
  return {
    firstSeq: batch.firstSeq + start,
    text: batch.text.slice(from, to),
    textLengths: batch.textLengths.slice(start, Math.max(start, end)),
    firstTimestamp: timestampDeltas.length > 0 ? timestamp : 0,
    timestampDeltas,
    streams: end <= start ? [] : batch.streams.length === 1 ? batch.streams : batch.streams.slice(start, end),
  };
}

/**
 * Splits a batch into batches of at most `maxTextLength` UTF-16 code units of text each (a longer single
 * line goes alone); the batch itself when it fits.
 */
export function splitLogLineBatch(batch: LogLineBatch, maxTextLength: number): LogLineBatch[] {
  if (batch.text.length <= maxTextLength) return [batch];
  const pieces: LogLineBatch[] = [];
  const count = logLineBatchCount(batch);
  let start = 0;
  let size = 0;
  for (let index = 0; index < count; index++) {
    const length = batch.textLengths[index]!;
    if (index > start && size + length > maxTextLength) {
      pieces.push(sliceLogLineBatch(batch, start, index));
      start = index;
      size = 0;
    }
    size += length;
  }
  if (start < count) pieces.push(sliceLogLineBatch(batch, start, count));
  return pieces;
}
