import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { asHodeiError, HodeiError, type HodeiErrorCode } from '../domain/errors';

const TO_STATUS: Record<HodeiErrorCode, status> = {
  INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  NOT_FOUND: status.NOT_FOUND,
  ILLEGAL_TRANSITION: status.FAILED_PRECONDITION,
  UNAUTHENTICATED: status.UNAUTHENTICATED,
  CONFLICT: status.ALREADY_EXISTS,
  UNAVAILABLE: status.UNAVAILABLE,
  ABORTED: status.ABORTED,
  PROVIDER_FAILED: status.UNAVAILABLE,
  CLOSED: status.UNAVAILABLE,
  DRAINING: status.UNAVAILABLE,
  INTERNAL: status.INTERNAL,
};

const FROM_STATUS: Partial<Record<status, HodeiErrorCode>> = {
  [status.INVALID_ARGUMENT]: 'INVALID_ARGUMENT',
  [status.NOT_FOUND]: 'NOT_FOUND',
  [status.FAILED_PRECONDITION]: 'ILLEGAL_TRANSITION',
  [status.UNAUTHENTICATED]: 'UNAUTHENTICATED',
  [status.ALREADY_EXISTS]: 'CONFLICT',
  [status.UNAVAILABLE]: 'UNAVAILABLE',
  [status.DEADLINE_EXCEEDED]: 'UNAVAILABLE',
  [status.ABORTED]: 'ABORTED',
};

/** Turns any thrown value into a gRPC error carrying the Hodei code and field in metadata. */
export function toServiceError(error: unknown): Partial<ServiceError> {
  const hodei = asHodeiError(error);
  const metadata = new Metadata();
  metadata.set('hodei-code', hodei.code);
  if (hodei.field) metadata.set('hodei-field', hodei.field);
  return { code: TO_STATUS[hodei.code], details: hodei.message, metadata };
}

/** Turns a gRPC client error back into the HodeiError the server threw. */
export function fromServiceError(error: unknown, address: string): HodeiError {
  if (HodeiError.isInstance(error)) return error;
  const service = error as Partial<ServiceError>;
  const code = (service.metadata?.get('hodei-code')[0] as HodeiErrorCode | undefined) ??
    FROM_STATUS[service.code ?? status.UNKNOWN] ?? 'INTERNAL';
  const field = service.metadata?.get('hodei-field')[0] as string | undefined;
  const message =
    service.code === status.UNAVAILABLE && !service.metadata?.get('hodei-code').length
      ? `cannot reach the Hodei server at ${address}: ${service.details ?? 'unavailable'}`
      : (service.details ?? String(error));
  return new HodeiError(code, message, { ...(field ? { field } : {}), cause: error });
}
