import { describe, expect, it } from 'vitest';
import { LineSplitter } from '../src/line-splitter';
import { createSecretFinder, createSecretMasker, longestMaskedSecret } from '@hodei/core/protocol';

function split(chunks: Array<Buffer | string>, max?: number): string[] {
  const lines: string[] = [];
  const splitter = new LineSplitter((line) => lines.push(line), max);
  for (const chunk of chunks) splitter.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  splitter.end();
  return lines;
}

describe('LineSplitter', () => {
  it('joins lines split across chunks and keeps empty lines', () => {
    expect(split(['hel', 'lo\nwor', 'ld\n\nlast\n'])).toEqual(['hello', 'world', '', 'last']);
  });

  it('flushes a partial last line at the end', () => {
    expect(split(['a\nno newline'])).toEqual(['a', 'no newline']);
    expect(split([''])).toEqual([]);
  });

  it('decodes a multi-byte character split between chunks', () => {
    const bytes = Buffer.from('añ€😀b\n');
    // Every possible cut point, including inside each character's bytes.
    for (let cut = 1; cut < bytes.length; cut++) {
      expect(split([bytes.subarray(0, cut), bytes.subarray(cut)])).toEqual(['añ€😀b']);
    }
    const oneByOne = [...bytes].map((byte) => Buffer.from([byte]));
    expect(split(oneByOne)).toEqual(['añ€😀b']);
  });

  it('trims CRLF, including a \\r and \\n in different chunks', () => {
    expect(split(['one\r\ntwo\r', '\nthree\r\n'])).toEqual(['one', 'two', 'three']);
    expect(split(['last\r'])).toEqual(['last']);
  });

  it('splits long lines into pieces instead of dropping them', () => {
    const long = 'x'.repeat(25);
    expect(split([`${long}\nshort\n`], 10)).toEqual(['x'.repeat(10), 'x'.repeat(10), 'x'.repeat(5), 'short']);
    // A long line arriving in small chunks without a newline does not grow without bound.
    const lines: string[] = [];
    const splitter = new LineSplitter((line) => lines.push(line), 10);
    for (let i = 0; i < 5; i++) splitter.push(Buffer.from('abcde'));
    expect(lines).toEqual(['abcdeabcde', 'abcdeabcde']);
    splitter.end();
    expect(lines).toEqual(['abcdeabcde', 'abcdeabcde', 'abcde']);
  });

  it('does not emit a spurious empty line when \\r\\n follows a line of exactly the limit', () => {
    expect(split(['0123456789\r', '\nnext\n'], 10)).toEqual(['0123456789', 'next']);
  });

  it('never cuts a surrogate pair in half', () => {
    const lines = split(['abc😀def\n'], 4);
    expect(lines.join('')).toBe('abc😀def');
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(4);
    expect(lines).toContain('😀de');
  });

  it('handles the default 64 KiB limit', () => {
    const big = 'y'.repeat(64 * 1024 * 2 + 7);
    const lines = split([big.slice(0, 1000), big.slice(1000), '\n']);
    expect(lines.map((line) => line.length)).toEqual([65536, 65536, 7]);
  });
});

describe('LineSplitter with secrets', () => {
  const secret = 'SECRET-12345';
  const mask = (text: string) => text.replaceAll(secret, '***');
  const find = (text: string) => [...text.matchAll(/SECRET-12345/g)].map((match) => [match.index, match.index + secret.length] as const);
  /** The pieces as the batcher sends them (it masks each one too). */
  function sent(chunks: string[]): string[] {
    const pieces: string[] = [];
    const splitter = new LineSplitter((text) => pieces.push(mask(text)), 32, { mask, find, longest: secret.length });
    for (const chunk of chunks) splitter.push(chunk);
    splitter.end();
    return pieces;
  }
  const leaks = (pieces: string[]) => pieces.filter((piece) => /SECR|ECRE|CRET|T-12|2345/.test(piece));

  it('masks a long line whole before cutting it: no piece holds part of a secret', () => {
    const pieces = sent([`${'a'.repeat(28)}${secret}${'b'.repeat(10)}\n`]);
    expect(leaks(pieces)).toEqual([]);
    expect(pieces.join('')).toBe(`${'a'.repeat(28)}***${'b'.repeat(10)}`);
  });

  it('keeps back the end of a line still growing, which may be the start of a secret still arriving', () => {
    // The line passes the 32-character piece while the secret is still arriving: a cut at 32 would send 'SECR'.
    const pieces = sent([`${'a'.repeat(28)}SECRET`, `-12345${'b'.repeat(5)}\n`]);
    expect(leaks(pieces)).toEqual([]);
    expect(pieces.join('')).toBe(`${'a'.repeat(28)}***${'b'.repeat(5)}`);
  });

  it('does not cut a growing line inside a secret that has fully arrived', () => {
    // 40 characters with the secret across 32, then more without a newline: the first cut moves to the secret's start.
    const pieces = sent([`${'a'.repeat(26)}${secret}${'b'.repeat(2)}`, 'c'.repeat(30), '\n']);
    expect(leaks(pieces)).toEqual([]);
    expect(pieces[0]).toBe('a'.repeat(26));
    expect(pieces.join('')).toBe(`${'a'.repeat(26)}***${'bb'}${'c'.repeat(30)}`);
  });

  it('masks whole a secret that contains a shorter one and arrives across reads', () => {
    // As the worker wires it: the job's two secrets, one a prefix of the other, and its real masker and finder.
    const env = { SHORT_TOKEN: 'password1234', LONG_TOKEN: 'password1234-tail-SECRET' };
    const secrets = { mask: createSecretMasker(env, []), find: createSecretFinder(env, []), longest: longestMaskedSecret(env, []) };
    const line = `${'x'.repeat(60)}password1234-tail-SECRET and more\n`;
    for (const at of [line.indexOf('password'), line.indexOf('1234'), line.indexOf('-tail'), line.indexOf('SECRET'), line.length]) {
      const pieces: string[] = [];
      const splitter = new LineSplitter((text) => pieces.push(secrets.mask(text)), 64, secrets);
      splitter.push(line.slice(0, at));
      splitter.push(line.slice(at));
      splitter.end();
      expect(pieces.join(''), `read cut at ${at}`).toBe(`${'x'.repeat(60)}*** and more`);
    }
  });

  it('keeps a growing line of many secrets no longer than twice a piece, though masked it would fit', () => {
    const kept: number[] = [];
    const pieces: string[] = [];
    const splitter = new LineSplitter((text) => pieces.push(mask(text)), 32, { mask, find, longest: secret.length });
    for (let i = 0; i < 50; i++) {
      splitter.push(secret);
      kept.push(12 * (i + 1) - pieces.join('').replaceAll('***', secret).length);
    }
    splitter.end();
    expect(Math.max(...kept)).toBeLessThanOrEqual(2 * 32 + secret.length);
    expect(pieces.join('')).toBe('***'.repeat(50));
  });

  it('cuts as before when there is no secret', () => {
    const plain = new LineSplitter(() => undefined, 32);
    expect(() => plain.push('x'.repeat(100))).not.toThrow();
    expect(split(['x'.repeat(70) + '\n'], 32)).toEqual(['x'.repeat(32), 'x'.repeat(32), 'x'.repeat(6)]);
  });
});
