import { HodeiError } from '@hodei/core';

interface PgErrorLike {
  code?: string;
  message?: string;
  constraint?: string;
}

/**
 * Turns an error from `pg` into a HodeiError naming the query: a duplicate key is `CONFLICT`, a value the
 * schema refuses (CHECK constraint, bad text) is `INVALID_ARGUMENT`, anything else (connection refused or
 * lost, timeouts, server errors) is `UNAVAILABLE`. The original error is kept as `cause`.
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
  if (code === '23514' || code === '22P02' || code === '22P05' || code === '22021') {
    return new HodeiError('INVALID_ARGUMENT', `postgres store: ${query}: value refused by the schema: ${detail}`, {
      cause: error,
    });
  }
  return new HodeiError('UNAVAILABLE', `postgres store: ${query} failed: ${detail}`, { cause: error });
}
