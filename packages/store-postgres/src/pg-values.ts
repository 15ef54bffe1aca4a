import { HodeiError } from '@hodei/core';
import pg from 'pg';

/*
 * How PostgresStore encodes the values of its batched statements and decodes the rows they return, without
 * pg's generic conversions: an array parameter is sent as one PostgreSQL array literal built here, and a
 * `timestamptz` column is read as milliseconds since the epoch (a number), not as a `Date`. Every job row the
 * store returns goes through both, and pg's general paths (a regular expression and a `Date` per timestamp, a
 * `Date` formatted field by field in local time per parameter) were a fifth of the store's CPU time per job.
 */

const TIMESTAMPTZ_OID = 1184;

/** `text` as a quoted array element: `"` and `\` escaped with a backslash. */
function quoted(text: string): string {
  return text.includes('"') || text.includes('\\') ? `"${text.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"` : `"${text}"`;
}

function pad(value: number, width: number): string {
  return String(value).padStart(width, '0');
}

/**
 * A `timestamptz` input PostgreSQL reads as exactly `millis` (ms since the epoch, UTC): ISO 8601 for the
 * years 1-9999 (native `toISOString`), else `YYYY-MM-DD HH:MM:SS.mmm+00` with ` BC` for years before 1. A value
 * that is no time (NaN, or past the range of a `Date`) gives text PostgreSQL refuses (`invalid input syntax`),
 * as pg's own encoding of an invalid `Date` does.
 */
export function timestamptzText(millis: number): string {
  // A batch often carries one time many times over (a finish's start and end, the same `now` for every job).
  if (millis === lastMillis) return lastText;
  const date = new Date(millis);
  if (Number.isNaN(date.getTime())) return 'invalid';
  lastMillis = millis;
  lastText = millis >= YEAR_1_MS && millis < YEAR_10000_MS ? date.toISOString() : outsideIsoYears(date);
  return lastText;
}

/** 0001-01-01T00:00:00Z and 10000-01-01T00:00:00Z in ms since the epoch: `toISOString` prints 4-digit years in between. */
const YEAR_1_MS = -62_135_596_800_000;
const YEAR_10000_MS = 253_402_300_800_000;
let lastMillis = Number.NaN;
let lastText = '';

/** `timestamptzText` for a year before 1 or after 9999 (as PostgreSQL writes them: a wider year, or ` BC`). */
function outsideIsoYears(date: Date): string {
  const year = date.getUTCFullYear();
  const bc = year < 1;
  const clock = `${pad(date.getUTCHours(), 2)}:${pad(date.getUTCMinutes(), 2)}:${pad(date.getUTCSeconds(), 2)}.${pad(date.getUTCMilliseconds(), 3)}`;
  return `${pad(bc ? 1 - year : year, 4)}-${pad(date.getUTCMonth() + 1, 2)}-${pad(date.getUTCDate(), 2)} ${clock}+00${bc ? ' BC' : ''}`;
}

/**
 * A PostgreSQL array literal of `values`, for a parameter cast to `type[]` in SQL: null and undefined are
 * `NULL`, strings are quoted, numbers and booleans written as they are, a `Date` as its `timestamptz` text
 * (`timestamptzText`). One-dimensional only: nested arrays and objects are refused with `INVALID_ARGUMENT`, so a
 * batch gives that error to the one call whose value it was (`settleEach` splits on it).
 */
export function arrayLiteral(values: readonly unknown[]): string {
  // Joined, not concatenated: one flat string rather than a rope of thousands of parts, which a batch waiting for
  // a connection would keep alive through garbage collections.
  const elements = new Array<string>(values.length);
  for (let index = 0; index < values.length; index++) {
    const value = values[index];
    if (value === null || value === undefined) elements[index] = 'NULL';
    else if (typeof value === 'string') elements[index] = quoted(value);
    else if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') elements[index] = String(value);
    else if (value instanceof Date) elements[index] = quoted(timestamptzText(value.getTime()));
    else throw new HodeiError('INVALID_ARGUMENT', `a value of type ${Array.isArray(value) ? 'array' : typeof value} cannot be stored in this field`);
  }
  return `{${elements.join(',')}}`;
}

/** The digits of `text` from `start` to `end` (exclusive) as a number, or -1 if any character is not a digit. */
function digits(text: string, start: number, end: number): number {
  let value = 0;
  for (let index = start; index < end; index++) {
    const code = text.charCodeAt(index) - 48;
    if (code < 0 || code > 9) return -1;
    value = value * 10 + code;
  }
  return value;
}

const parseTimestamptz = pg.types.getTypeParser(TIMESTAMPTZ_OID, 'text') as (text: string) => Date | number | null;

/**
 * A `timestamptz` value as PostgreSQL prints it (DateStyle ISO, any TimeZone), e.g.
 * `2026-11-29 15:43:32.123456+05:30`, as milliseconds since the epoch, truncated as pg's own parser truncates
 * (sub-millisecond digits dropped). Text of another shape (a year before 1000 or after 9999, BC, infinity) goes
 * through pg's parser.
 */
export function timestamptzMs(text: string): number {
  // YYYY-MM-DD HH:MM:SS, then an optional fraction, then the offset: ±HH, ±HH:MM or ±HH:MM:SS.
  const year = digits(text, 0, 4);
  if (year >= 1000 && text.charCodeAt(4) === 45 && text.charCodeAt(7) === 45 && text.charCodeAt(10) === 32 && text.charCodeAt(13) === 58 && text.charCodeAt(16) === 58) {
    const month = digits(text, 5, 7);
    const day = digits(text, 8, 10);
    const hour = digits(text, 11, 13);
    const minute = digits(text, 14, 16);
    const second = digits(text, 17, 19);
    let at = 19;
    let millis = 0;
    if (text.charCodeAt(at) === 46) {
      let end = at + 1;
      while (end < text.length && text.charCodeAt(end) >= 48 && text.charCodeAt(end) <= 57) end++;
      const fraction = text.slice(at + 1, Math.min(end, at + 4)).padEnd(3, '0');
      millis = end > at + 1 ? digits(fraction, 0, 3) : -1;
      at = end;
    }
    const sign = text.charCodeAt(at) === 43 ? 1 : text.charCodeAt(at) === 45 ? -1 : 0;
    const offsetParts = [digits(text, at + 1, at + 3), 0, 0];
    let end = at + 3;
    for (let part = 1; part < 3 && text.charCodeAt(end) === 58; part++) {
      offsetParts[part] = digits(text, end + 1, end + 3);
      end += 3;
    }
    if (sign !== 0 && end === text.length && Math.min(month, day, hour, minute, second, millis, ...offsetParts) >= 0) {
      const offsetMs = sign * (offsetParts[0]! * 3_600_000 + offsetParts[1]! * 60_000 + offsetParts[2]! * 1_000);
      return Date.UTC(year, month - 1, day, hour, minute, second, millis) - offsetMs;
    }
  }
  const parsed = parseTimestamptz(text);
  return parsed instanceof Date ? parsed.getTime() : Number.NaN;
}

/**
 * The type parsers of the store's queries: pg's own, except `timestamptz`, read as a number of milliseconds
 * (`timestamptzMs`). Passed per query, so a `pg.Pool` the store shares with other code keeps its parsers.
 */
export const STORE_TYPES = {
  getTypeParser(oid: number, format?: 'text' | 'binary'): (value: string) => unknown {
    if (oid === TIMESTAMPTZ_OID && format !== 'binary') return timestamptzMs;
    return pg.types.getTypeParser(oid, format ?? 'text') as (value: string) => unknown;
  },
};
