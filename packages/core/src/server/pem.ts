import { invalidArgument } from '../domain/errors';

const MARKERS = {
  certificate: /-----BEGIN CERTIFICATE-----/,
  'private key': /-----BEGIN [A-Z ]*PRIVATE KEY-----/,
} as const;

/** `value` (a string or Buffer of PEM text) as a string, or INVALID_ARGUMENT naming `field`. */
export function pemText(value: unknown, field: string, kind: keyof typeof MARKERS): string {
  const text = typeof value === 'string' ? value : Buffer.isBuffer(value) ? value.toString('utf8') : undefined;
  if (text === undefined || !MARKERS[kind].test(text)) {
    throw invalidArgument(field, `must be a PEM ${kind} (the file's contents, not its path)`);
  }
  return text;
}

/** Checks a bearer token option: a non-empty string without whitespace (it travels in a header). */
export function validateAuthToken(token: unknown, field: string): void {
  if (token !== undefined && (typeof token !== 'string' || token.trim() === '' || /\s/.test(token))) {
    throw invalidArgument(field, 'must be a non-empty string without spaces');
  }
}
