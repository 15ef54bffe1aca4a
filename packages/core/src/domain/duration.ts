import { invalidArgument } from './errors';

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PATTERN = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

/**
 * Parses a human duration (`500ms`, `90s`, `5m`, `1h`, `1d`) into milliseconds.
 * A bare number is read as milliseconds. Throws `INVALID_ARGUMENT` naming `field` otherwise.
 *
 * @example parseDuration('90s') // 90000
 */
export function parseDuration(text: string, field = 'duration'): number {
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const match = PATTERN.exec(trimmed);
  if (!match) {
    throw invalidArgument(field, `"${text}" is not a duration; use a number with a unit, e.g. 500ms, 90s, 5m, 1h`);
  }
  return Math.round(Number(match[1]) * UNITS[match[2]!]!);
}

/** Formats milliseconds as seconds without trailing zeros: 1000 → "1", 1500 → "1.5". */
export function formatSeconds(ms: number): string {
  return String(Number((ms / 1000).toFixed(3)));
}
