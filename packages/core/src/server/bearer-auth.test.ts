import { Metadata } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { checkBearerToken } from './bearer-auth';

function withAuthorization(value?: string): Metadata {
  const metadata = new Metadata();
  if (value !== undefined) metadata.set('authorization', value);
  return metadata;
}

describe('checkBearerToken', () => {
  const token = 's3cret-token';

  it('lets a request with the right bearer token through (scheme in any case)', () => {
    expect(checkBearerToken(withAuthorization(`Bearer ${token}`), token)).toBeUndefined();
    expect(checkBearerToken(withAuthorization(`bearer ${token}`), token)).toBeUndefined();
  });

  it('refuses a request without the header, or with another scheme, saying how to send it', () => {
    for (const metadata of [withAuthorization(), withAuthorization(`Basic ${token}`), withAuthorization(token)]) {
      const refusal = checkBearerToken(metadata, token);
      expect(refusal?.code).toBe('UNAUTHENTICATED');
      expect(refusal?.message).toMatch(/requires an auth token: send "authorization: Bearer <token>"/);
    }
  });

  it('refuses a wrong token, a prefix of it and a longer one, without echoing either', () => {
    for (const wrong of ['nope', token.slice(0, -1), `${token}x`]) {
      const refusal = checkBearerToken(withAuthorization(`Bearer ${wrong}`), token);
      expect(refusal?.code).toBe('UNAUTHENTICATED');
      expect(refusal?.message).toMatch(/was not accepted/);
      expect(refusal?.message).not.toContain(token);
      expect(refusal?.message).not.toContain(wrong);
    }
  });
});
