import { HodeiError } from '@hodei/core';

interface PgErrorLike {
  code?: string;
  message?: string;
  constraint?: string;
  cause?: unknown;
}

/** Node's socket errors that mean the database could not be reached or the connection broke. */
const CONNECTION_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** SQLSTATEs outside class 08 that mean the server is going away or cannot take the connection now. */
const UNAVAILABLE_SQLSTATES = new Set([
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, shutting down, in recovery)
  '53300', // too_many_connections
  '25006', // read_only_sql_transaction: a primary demoted by a failover, until the connection reaches the new one
]);

/** pg's own errors (no SQLSTATE) for a connection that broke, timed out or could not be made. */
const CONNECTION_MESSAGES = [
  /^Connection terminated/,
  /^timeout exceeded when trying to connect/,
  /^Query read timeout/,
  /is not queryable/,
];

/** A serialization failure or a deadlock: the transaction lost a race and may succeed when tried again. */
const ABORTED_SQLSTATES = new Set(['40001', '40P01']);

function isConnectionError(error: PgErrorLike, depth = 0): boolean {
  const code = error.code ?? '';
  if (code.startsWith('08') || UNAVAILABLE_SQLSTATES.has(code) || CONNECTION_ERRNOS.has(code)) return true;
  if (CONNECTION_MESSAGES.some((pattern) => pattern.test(error.message ?? ''))) return true;
  // A connect attempt to several addresses fails with an AggregateError of the socket errors.
  const nested = [...((error as { errors?: unknown[] }).errors ?? []), error.cause];
  return depth < 3 && nested.some((inner) => typeof inner === 'object' && inner !== null && isConnectionError(inner as PgErrorLike, depth + 1));
}

/**
 * Turns an error from `pg` into a HodeiError naming the query, the original kept as `cause`:
 * - a duplicate key is `CONFLICT`; a value the schema refuses (CHECK constraint, any data exception of class 22:
 *   bad text, a timestamp out of range) is `INVALID_ARGUMENT`;
 * - the database unreachable or the connection lost (SQLSTATE class 08, 57P01-57P03, 53300, socket errors,
 *   pg's "Connection terminated" and connect timeouts), or read-only for a moment (25006: a primary demoted by a
 *   failover) is `UNAVAILABLE`: the engine retries it through the outage;
 * - a serialization failure or deadlock (40001, 40P01) is `ABORTED`: retried too, but the store is up;
 * - anything else (a value too long, a foreign key, an SQL error) is `INTERNAL`: trying again cannot help.
 */
export function toHodeiError(query: string, error: unknown): HodeiError {
  if (HodeiError.isInstance(error)) return error;
  const pgError = (typeof error === 'object' && error !== null ? error : {}) as PgErrorLike;
  const detail = pgError.message ?? String(error);
  const code = pgError.code ?? '';
  if (code === '23505') {
    return new HodeiError('CONFLICT', `postgres store: ${query}: duplicate key (${pgError.constraint ?? detail})`, {
      cause: error,
    });
  }
  // Class 22 (data exception: bad text, a timestamp out of range or NaN, a number too large...) and a CHECK
  // constraint: the value one caller sent, which fails that caller's row only when a batch is split.
  if (code === '23514' || code.startsWith('22')) {
    return new HodeiError('INVALID_ARGUMENT', `postgres store: ${query}: value refused by the schema: ${detail}`, {
      cause: error,
    });
  }
  if (isConnectionError(pgError)) {
    return new HodeiError('UNAVAILABLE', `postgres store: ${query} failed: ${detail}`, { cause: error });
  }
  if (ABORTED_SQLSTATES.has(code)) {
    return new HodeiError('ABORTED', `postgres store: ${query} aborted: ${detail}`, { cause: error });
  }
  const sqlstate = code === '' ? '' : ` (SQLSTATE ${code})`;
  return new HodeiError('INTERNAL', `postgres store: ${query} failed${sqlstate}: ${detail}`, { cause: error });
}
