import { createHash, timingSafeEqual } from 'node:crypto';
import type { Metadata } from '@grpc/grpc-js';
import { HodeiError } from '../domain/errors';
import { toServiceError } from './status-mapping';

const BEARER = /^Bearer\s+(\S+)\s*$/i;

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/**
 * Checks `authorization: Bearer <token>` request metadata against `token` in constant time (both sides are
 * hashed first, so neither the token's length nor its content leaks through timing). Returns the refusal, or
 * `undefined` when the request may proceed.
 */
export function checkBearerToken(metadata: Metadata, token: string): HodeiError | undefined {
  const header = metadata.get('authorization')[0];
  const match = typeof header === 'string' ? BEARER.exec(header) : null;
  if (!match) {
    return new HodeiError('UNAUTHENTICATED', 'this server requires an auth token: send "authorization: Bearer <token>" (SDK: authToken; CLI: --auth-token or HODEI_AUTH_TOKEN)');
  }
  if (!timingSafeEqual(digest(match[1]!), digest(token))) {
    return new HodeiError('UNAUTHENTICATED', 'the auth token was not accepted (check --auth-token or HODEI_AUTH_TOKEN)');
  }
  return undefined;
}

type Handler = (call: { metadata: Metadata; emit(event: 'error', error: unknown): boolean }, callback?: (error: unknown) => void) => void;

/**
 * Wraps every handler of a gRPC service implementation so that a request without the bearer token is answered
 * UNAUTHENTICATED before the handler runs (unary calls through their callback, streams with an error status).
 */
export function requireBearerToken<Service extends object>(service: Service, token: string): Service {
  const guarded: Record<string, Handler> = {};
  for (const [name, handler] of Object.entries(service as Record<string, Handler>)) {
    guarded[name] = (call, callback) => {
      const refusal = checkBearerToken(call.metadata, token);
      if (!refusal) return handler(call, callback);
      if (callback) callback(toServiceError(refusal));
      else call.emit('error', toServiceError(refusal));
    };
  }
  return guarded as Service;
}
