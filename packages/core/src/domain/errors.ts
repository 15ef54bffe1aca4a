const MARKER = Symbol.for('hodei.error');

/** Stable error codes. Each maps to one gRPC status and one CLI exit code. */
export type HodeiErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'ILLEGAL_TRANSITION'
  | 'UNAUTHENTICATED'
  | 'CONFLICT'
  | 'UNAVAILABLE'
  /** A transaction lost a race with another (serialization failure, deadlock): trying it again may succeed. */
  | 'ABORTED'
  | 'PROVIDER_FAILED'
  | 'CLOSED'
  /** The server is draining (stopping): it accepts no new jobs; retry against another server or later. */
  | 'DRAINING'
  | 'INTERNAL';

/** Optional details of a {@link HodeiError}. */
export interface HodeiErrorOptions {
  /** The input field the error is about, e.g. `spec.timeoutMs`. */
  field?: string;
  /** The underlying error, kept as the standard `Error.cause`. */
  cause?: unknown;
}

/**
 * The one error type Hodei throws. `code` is stable and safe to branch on; `field` names the offending input.
 *
 * @example
 * try { await client.get('nope'); } catch (error) {
 *   if (HodeiError.isInstance(error) && error.code === 'NOT_FOUND') console.log('no such job');
 * }
 */
export class HodeiError extends Error {
  /** Stable machine-readable code; branch on this, not on the message. */
  readonly code: HodeiErrorCode;
  /** The input field the error is about (e.g. `spec.timeoutMs`), when there is one. */
  readonly field: string | undefined;
  private readonly [MARKER] = true;

  constructor(code: HodeiErrorCode, message: string, options: HodeiErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HodeiError';
    this.code = code;
    this.field = options.field;
  }

  /** True for a HodeiError from any installed copy of the package. */
  static isInstance(value: unknown): value is HodeiError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[MARKER] === true;
  }
}

/** Builds the `INVALID_ARGUMENT` error for `field`; its message is `"<field>: <reason>"`. */
export function invalidArgument(field: string, reason: string): HodeiError {
  return new HodeiError('INVALID_ARGUMENT', `${field}: ${reason}`, { field });
}

/** `error` if it is a HodeiError, else an INTERNAL one with its message (what reaches a client for an unexpected failure). */
export function asHodeiError(error: unknown): HodeiError {
  return HodeiError.isInstance(error) ? error : new HodeiError('INTERNAL', error instanceof Error ? error.message : String(error));
}
