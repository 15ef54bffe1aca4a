import { StringDecoder } from 'node:string_decoder';

/** Longest line emitted as one piece, in UTF-16 code units; longer lines are split, not dropped. */
export const DEFAULT_MAX_LINE_LENGTH = 64 * 1024;

/**
 * Secrets to mask before a long line is cut (see `createSecretMasker`). A complete line is masked whole before it
 * is cut. A line still growing (no newline yet) is cut only before its last `longest - 1` characters, which may be
 * the start of a secret still arriving, and never inside a secret `find` reports; the text it keeps back stays
 * unmasked, so a longer secret that contains a shorter one is still masked whole once it has arrived. No secret
 * of up to half the maximum line length is ever cut in two and sent half in clear.
 */
export interface SplitterSecrets {
  /** Replaces every secret in a text (see `createSecretMasker`). */
  mask: (text: string) => string;
  /** Where `mask` finds secrets in a text: `[start, end)` of each, left to right (see `createSecretFinder`). */
  find: (text: string) => ReadonlyArray<readonly [start: number, end: number]>;
  /** The length of the longest secret `mask` replaces. */
  longest: number;
}

/**
 * Turns the chunks read from a pipe into lines. Chunks may end inside a line or inside a multi-byte UTF-8
 * character; the partial line is kept until its newline arrives or `end()` flushes it. `\r\n` endings are
 * trimmed to the bare text; over-long lines come out as several pieces of at most `maxLineLength`.
 */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private partial = '';
  private ended = false;
  /** How much of a growing line is kept back at a cut (see SplitterSecrets); at most half a piece. */
  private readonly keptBack: number;

  constructor(
    private readonly onLine: (text: string) => void,
    private readonly maxLineLength: number = DEFAULT_MAX_LINE_LENGTH,
    private readonly secrets?: SplitterSecrets,
  ) {
    if (!(maxLineLength >= 2)) throw new RangeError('maxLineLength must be at least 2');
    this.keptBack = secrets ? Math.min(Math.max(0, secrets.longest - 1), Math.floor(maxLineLength / 2)) : 0;
  }

  /** Feeds one chunk read from the pipe. */
  push(chunk: Buffer | string): void {
    if (this.ended) return;
    const text = typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    if (text.length === 0) return;
    let data = this.partial.length > 0 ? this.partial + text : text;
    let start = 0;
    let newline = data.indexOf('\n', start);
    while (newline !== -1) {
      const end = newline > start && data.charCodeAt(newline - 1) === 13 ? newline - 1 : newline;
      this.emit(data, start, end);
      start = newline + 1;
      newline = data.indexOf('\n', start);
    }
    data = start === 0 ? data : data.slice(start);
    // Do not let a line without a newline grow without bound: emit full pieces now. A trailing `\r` is
    // kept back, as it may be the first half of a `\r\n` split across chunks.
    // The partial line is kept as read, unmasked: masking its end early would mask a shorter secret inside a
    // longer one still arriving, and the rest of the longer one would go out in clear.
    while (data.length > this.maxLineLength && !(data.length === this.maxLineLength + 1 && data.endsWith('\r'))) {
      // Masked, it fits: it stays whole (up to twice the piece as read, so memory and re-masking stay bounded).
      if (this.secrets && data.length <= 2 * this.maxLineLength && this.secrets.mask(data).length <= this.maxLineLength) break;
      let cut = this.cutPoint(data, 0, Math.min(this.maxLineLength, data.length - this.keptBack));
      cut = this.outsideSecrets(data, cut);
      const piece = data.slice(0, cut);
      this.onLine(this.secrets ? this.secrets.mask(piece) : piece);
      data = data.slice(cut);
    }
    this.partial = data;
  }

  /** Flushes the last line when the pipe closes (a final line without newline is still a line). */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    let rest = this.partial + this.decoder.end();
    this.partial = '';
    if (rest.endsWith('\r')) rest = rest.slice(0, -1);
    if (rest.length > 0) this.emit(rest, 0, rest.length);
  }

  private emit(data: string, start: number, end: number): void {
    if (this.secrets && end - start > this.maxLineLength) {
      // A whole line: masked before it is cut.
      data = this.secrets.mask(data.slice(start, end));
      [start, end] = [0, data.length];
    }
    while (end - start > this.maxLineLength) {
      const cut = this.cutPoint(data, start, start + this.maxLineLength);
      this.onLine(data.slice(start, cut));
      start = cut;
    }
    this.onLine(data.slice(start, end));
  }

  /**
   * Moves a cut out of the secret it falls in: to the secret's start, or past its end when it starts the text.
   * A secret that starts before the cut is complete in `data`, as the cut leaves `longest - 1` characters after it.
   */
  private outsideSecrets(data: string, cut: number): number {
    if (!this.secrets) return cut;
    // Only secrets that start before the cut matter, and they end within `longest` of it: the rest is not searched.
    for (const [start, end] of this.secrets.find(data.slice(0, cut + this.secrets.longest - 1))) {
      if (start >= cut) break;
      if (end > cut) return start > 0 ? start : end;
    }
    return cut;
  }

  /** Where to cut a long line: at `limit`, moved back one so a surrogate pair is never split. */
  private cutPoint(data: string, start: number, limit: number): number {
    const code = data.charCodeAt(limit - 1);
    return code >= 0xd800 && code <= 0xdbff && limit - 1 > start ? limit - 1 : limit;
  }
}
