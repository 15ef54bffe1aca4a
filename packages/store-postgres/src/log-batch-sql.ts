import type { LogLineBatch, NewLogLineBatch } from '@hodei/core';
import { unnestArrays } from './batch-sql';

// SQL and encoding of PostgresStore's batch log methods. Lines stay one row each in job_logs (the seed's
// queries and `hodei job logs` read them); what changes is how a packed batch travels to and from PostgreSQL:
// as a few parameters per batch (array literals joined in one native call, the texts as one string split by
// PostgreSQL) instead of five arrays of one JavaScript value per line, each converted by node-postgres.

/**
 * Appends packed batches to distinct jobs in one statement: bumps each job's `log_count` by its batch's line
 * count and inserts the batch numbered from the old count + 1. Parameters, per batch: $1 job ids, $2 line
 * counts, $3 first timestamps (ms), $4 where its lines start in the per-line arrays (0 for the first); per
 * line, all batches one after another: $5 the batch's ordinal (from 1), $6 the line's timestamp minus its
 * batch's first (ms), $7 stream names; $8 every line's text followed by the separator $9 (a string no text
 * contains). Returns each existing job's id and new `log_count`; an unknown job's lines are not inserted.
 * Nothing is sorted: each line's seq and timestamp come from its position and offset. The first array sits
 * behind a sub-select (`unnestArrays`) so that the prepared statement keeps its generic plan.
 */
export function appendLogBatchesSql(jobs: string, logs: string): string {
  return `WITH batch AS (
  SELECT * FROM ${unnestArrays(['$1::text[]', '$2::integer[]', '$3::float8[]', '$4::integer[]'])} WITH ORDINALITY AS b(v_job, v_count, v_first_ms, v_start, v_batch)
), bumped AS (
  UPDATE ${jobs} AS j SET log_count = j.log_count + b.v_count FROM batch b WHERE j.id = b.v_job
  RETURNING j.id, j.log_count, b.v_count, b.v_first_ms, b.v_start, b.v_batch
), inserted AS (
  INSERT INTO ${logs} (job_id, seq, ts, stream, text)
  SELECT bumped.id, bumped.log_count - bumped.v_count + (l.v_line - bumped.v_start),
    to_timestamp((bumped.v_first_ms + l.v_offset_ms) / 1000.0), l.v_stream, l.v_text
  FROM unnest($5::integer[], $6::float8[], $7::text[], string_to_array($8::text, $9::text))
    WITH ORDINALITY AS l(v_batch, v_offset_ms, v_stream, v_text, v_line)
  JOIN bumped ON bumped.v_batch = l.v_batch
)
SELECT id, log_count FROM bumped`;
}

/**
 * Reads up to $3 lines of job $1 from seq $2 as one packed batch: the first and last seq, the line count,
 * the texts concatenated, their lengths in characters (code points), the timestamps (ms) and the streams
 * (one entry when all lines share it). No rows: a null first seq. The page also stops before the line that
 * would take its text past $4 characters (the first line is always in it): one string holds the whole page,
 * and 8,192 lines of 64 KiB made a string longer than Node accepts.
 */
export function readLogBatchSql(logs: string): string {
  return `WITH lines AS (
  SELECT seq, stream, text, ts, sum(char_length(text)) OVER (ORDER BY seq) - char_length(text) AS text_before
  FROM (SELECT seq, stream, text, ts FROM ${logs} WHERE job_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3) AS first_lines
), page AS (
  SELECT seq, stream, text, floor(extract(epoch FROM ts) * 1000)::float8 AS ts_ms
  FROM lines WHERE text_before = 0 OR text_before + char_length(text) <= $4
)
SELECT min(seq)::float8 AS first_seq, max(seq)::float8 AS last_seq, count(*)::integer AS count,
  string_agg(text, '' ORDER BY seq) AS text,
  array_agg(char_length(text) ORDER BY seq) AS lengths,
  array_agg(ts_ms ORDER BY seq) AS timestamps,
  CASE WHEN min(stream) = max(stream) THEN ARRAY[min(stream)] ELSE array_agg(stream ORDER BY seq) END AS streams
FROM page`;
}

/** One batch of an append statement, encoded when the call was made (see {@link appendLogBatchesSql}). */
export interface EncodedLogBatch {
  jobId: string;
  count: number;
  firstTimestamp: number;
  /** Each line's timestamp minus the first line's, comma-separated. */
  offsets: string;
  /** One stream name per line, comma-separated. */
  streams: string;
  /** Every line's text (NUL, which PostgreSQL text cannot hold, as U+FFFD), then an empty string. */
  texts: string[];
  /** All the texts, to pick a separator none of them contains. */
  source: string;
}

/** Encodes a batch for {@link appendLogBatchesSql} (it has at least one line). */
export function encodeLogBatch(jobId: string, batch: NewLogLineBatch): EncodedLogBatch {
  const source = batch.text.includes('\u0000') ? batch.text.replaceAll('\u0000', '\uFFFD') : batch.text;
  const count = batch.textLengths.length;
  const texts = new Array<string>(count + 1);
  let offset = 0;
  for (let index = 0; index < count; index++) {
    const end = offset + batch.textLengths[index]!;
    texts[index] = source.slice(offset, end);
    offset = end;
  }
  texts[count] = '';
  const offsets = new Array<number>(count);
  let sum = 0;
  for (let index = 0; index < count; index++) offsets[index] = sum += batch.timestampDeltas[index]!;
  const streams = batch.streams.length === 1 ? new Array<string>(count).fill(batch.streams[0]!) : batch.streams;
  return { jobId, count, firstTimestamp: batch.firstTimestamp, offsets: offsets.join(','), streams: streams.join(','), texts, source };
}

/**
 * A separator no batch's text contains: a newline (lines read from a pipe never hold one), else
 * `\u0001<n>\u0002` for the first n that fits. Neither begins with its own end, so a text's last characters
 * can never start a false match.
 */
function separatorFor(batches: readonly EncodedLogBatch[]): string {
  const fits = (candidate: string) => batches.every((batch) => !batch.source.includes(candidate));
  if (fits('\n')) return '\n';
  for (let n = 0; ; n++) if (fits(`\u0001${n}\u0002`)) return `\u0001${n}\u0002`;
}

/** The parameters of {@link appendLogBatchesSql} for batches of distinct jobs. */
export function appendLogBatchesParams(batches: readonly EncodedLogBatch[]): unknown[] {
  const separator = separatorFor(batches);
  const ordinals = batches.map((batch, index) => new Array<number>(batch.count).fill(index + 1).join(','));
  const starts: number[] = [];
  let start = 0;
  for (const batch of batches) {
    starts.push(start);
    start += batch.count;
  }
  const list = (values: string[]) => `{${values.join(',')}}`;
  return [
    batches.map((batch) => batch.jobId),
    batches.map((batch) => batch.count),
    batches.map((batch) => batch.firstTimestamp),
    starts,
    list(ordinals),
    list(batches.map((batch) => batch.offsets)),
    list(batches.map((batch) => batch.streams)),
    batches.map((batch) => batch.texts.join(separator)).join(''),
    separator,
  ];
}

/** A row of {@link readLogBatchSql} as a packed batch (lengths turned into UTF-16 code units). */
export function logBatchFromRow(row: Record<string, unknown>): LogLineBatch | undefined {
  if (row.first_seq === null || row.first_seq === undefined) return undefined;
  const text = row.text as string;
  const lengths = row.lengths as number[];
  const timestamps = row.timestamps as number[];
  const deltas = new Array<number>(timestamps.length);
  for (let index = 0; index < timestamps.length; index++) deltas[index] = index === 0 ? 0 : timestamps[index]! - timestamps[index - 1]!;
  return {
    firstSeq: Number(row.first_seq),
    text,
    textLengths: /[\uD800-\uDFFF]/.test(text) ? utf16Lengths(text, lengths) : lengths,
    firstTimestamp: timestamps[0]!,
    timestampDeltas: deltas,
    streams: row.streams as LogLineBatch['streams'],
  };
}

/** Lengths in code points (as PostgreSQL counts) turned into UTF-16 code units, walking `text`. */
function utf16Lengths(text: string, codePoints: readonly number[]): number[] {
  const lengths = new Array<number>(codePoints.length);
  let offset = 0;
  for (let index = 0; index < codePoints.length; index++) {
    let end = offset;
    for (let point = 0; point < codePoints[index]!; point++) {
      const code = text.charCodeAt(end);
      end += code >= 0xd800 && code <= 0xdbff && end + 1 < text.length ? 2 : 1;
    }
    lengths[index] = end - offset;
    offset = end;
  }
  return lengths;
}
