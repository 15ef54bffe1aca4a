import { HodeiError } from '@hodei/core';

const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** Checks a `postgres://` / `postgresql://` URL; throws `INVALID_ARGUMENT` (field `connectionString`). */
export function validateConnectionString(value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new HodeiError('INVALID_ARGUMENT', 'connectionString: a postgres:// URL is required', {
      field: 'connectionString',
    });
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch (error) {
    throw new HodeiError('INVALID_ARGUMENT', 'connectionString: not a valid URL (expected postgres://user:password@host:port/database)', {
      field: 'connectionString',
      cause: error,
    });
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new HodeiError('INVALID_ARGUMENT', `connectionString: unsupported scheme "${url.protocol}" (expected postgres:// or postgresql://)`, {
      field: 'connectionString',
    });
  }
  if (url.hostname === '' && !url.searchParams.has('host')) {
    throw new HodeiError('INVALID_ARGUMENT', 'connectionString: the URL names no host', { field: 'connectionString' });
  }
  return value;
}

/** A plain SQL identifier (letters, digits, underscores; at most 63 characters); default `public`. */
export function validateSchema(value: unknown): string {
  if (value === undefined) return 'public';
  if (typeof value !== 'string' || !SCHEMA_NAME.test(value)) {
    throw new HodeiError('INVALID_ARGUMENT', 'schema: expected a plain SQL identifier (letters, digits and _, at most 63)', {
      field: 'schema',
    });
  }
  return value;
}

export function validatePoolSize(value: unknown): number {
  if (value === undefined) return 10;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 1_000) {
    throw new HodeiError('INVALID_ARGUMENT', 'poolSize: expected an integer from 1 to 1000', { field: 'poolSize' });
  }
  return value;
}

export function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
