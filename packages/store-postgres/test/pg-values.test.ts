import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { arrayLiteral, STORE_TYPES, timestamptzMs, timestamptzText } from '../src/pg-values';
import { useTestClient } from './helpers';

/** Times across the range the store may meet: BC, years before 1000 and after 9999, negative and sub-second. */
const TIMES = [
  0,
  -1,
  1,
  1_764_431_012_345,
  -62_135_596_800_000, // 0001-01-01T00:00:00Z
  -62_135_596_800_001, // the last millisecond of 1 BC
  -62_198_755_200_000 - 1234, // 2 BC, not on a second
  -30_610_224_000_000 + 999, // 1000-01-01, 999 ms
  -30_610_224_000_001, // 0999-12-31
  -2_208_988_800_000 + 7, // 1900
  253_402_300_799_999, // 9999-12-31T23:59:59.999Z
  253_402_300_800_000, // 10000-01-01
  9_000_000_000_123, // 2255
  8_640_000_000_000_000, // the last time a Date holds
];

describe('pg-values', () => {
  const testClient = useTestClient();

  it('writes times PostgreSQL reads back as the same millisecond', async () => {
    const client = testClient();
    const { rows } = await client.query<{ ms: string }>(
      `SELECT (extract(epoch FROM t) * 1000)::numeric::text AS ms FROM unnest($1::timestamptz[]) WITH ORDINALITY AS u(t, n) ORDER BY n`,
      [arrayLiteral(TIMES.map((time) => new Date(time)))],
    );
    expect(rows.map((row) => Number(row.ms))).toEqual(TIMES);
  });

  it('reads every time as pg does, in any session time zone', async () => {
    const client = testClient();
    // Offsets of whole hours, half hours, negative ones and local mean time with seconds (+00:19:32 in 1850).
    const extra = [-3_786_825_600_000 + 61_500];
    for (const zone of ['UTC', 'Asia/Kolkata', 'America/St_Johns', 'Europe/Amsterdam', 'Pacific/Chatham']) {
      await client.query(`SET TIME ZONE '${zone}'`);
      const { rows } = await client.query<{ t: string }>({
        text: `SELECT t::text AS t FROM unnest($1::timestamptz[]) WITH ORDINALITY AS u(t, n) ORDER BY n`,
        values: [arrayLiteral([...TIMES, ...extra].map((time) => timestamptzText(time)))],
      });
      const parse = pg.types.getTypeParser(1184, 'text') as (text: string) => Date | number;
      for (const { t } of rows) {
        const expected = parse(t);
        expect([t, timestamptzMs(t)]).toEqual([t, expected instanceof Date ? expected.getTime() : Number.NaN]);
      }
      const { rows: typed } = await client.query({ text: 'SELECT $1::timestamptz AS t', values: [timestamptzText(1_764_431_012_345)], types: STORE_TYPES });
      expect(typed[0].t).toBe(1_764_431_012_345);
    }
    await client.query('SET TIME ZONE DEFAULT');
  });

  it('reads a fraction of more than three digits truncated to the millisecond', () => {
    expect(timestamptzMs('2026-11-29 15:43:32.123999+00')).toBe(Date.UTC(2026, 10, 29, 15, 43, 32, 123));
    expect(timestamptzMs('2026-11-29 15:43:32.5-03:30')).toBe(Date.UTC(2026, 10, 29, 19, 13, 32, 500));
    expect(timestamptzMs('infinity')).toBeNaN();
  });

  it('sends every element as PostgreSQL reads it back, whatever characters a string holds', async () => {
    const client = testClient();
    const texts = ['plain', '', 'NULL', 'with "quotes"', 'back\\slash', 'comma, {braces}', ' spaces ', 'ünïcødé 🙂', 'new\nline'];
    const { rows } = await client.query<{ v: string | null }>(
      `SELECT v FROM unnest($1::text[]) WITH ORDINALITY AS u(v, n) ORDER BY n`,
      [arrayLiteral([...texts, null, undefined])],
    );
    expect(rows.map((row) => row.v)).toEqual([...texts, null, null]);
    const { rows: numbers } = await client.query<{ i: number; f: number; b: boolean }>(
      `SELECT i, f, b FROM unnest($1::integer[], $2::double precision[], $3::boolean[]) AS u(i, f, b)`,
      [arrayLiteral([-2_147_483_648, 0, 7]), arrayLiteral([0.1, -1.5e-7, 12_345.678]), arrayLiteral([true, false, null])],
    );
    expect(numbers).toEqual([
      { i: -2_147_483_648, f: 0.1, b: true },
      { i: 0, f: -1.5e-7, b: false },
      { i: 7, f: 12_345.678, b: null },
    ]);
  });

  it('gives an invalid time as text PostgreSQL refuses, and refuses nested values', async () => {
    const client = testClient();
    expect(timestamptzText(Number.NaN)).toBe('invalid');
    await expect(client.query('SELECT $1::timestamptz[]', [arrayLiteral([new Date(Number.NaN)])])).rejects.toThrow(/invalid input syntax/);
    expect(() => arrayLiteral([{ a: 1 }])).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => arrayLiteral([[1]])).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});
