import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, createPlatform, HodeiError, type Platform } from '@hodei/core';
import { ProcessProvider } from '../src';
import { makeTestCertificates, type TestCertificates } from './certificates';
import { collectLogs, textOf } from './helpers';

const TOKEN = 'test-token-0123456789abcdef';

async function refusal(promise: Promise<unknown>): Promise<HodeiError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  if (!HodeiError.isInstance(error)) throw new Error(`expected a HodeiError, got ${String(error)}`);
  return error;
}

describe('TLS and the client bearer token', () => {
  let certs: TestCertificates;
  let platform: Platform;
  let provider: ProcessProvider;

  beforeAll(async () => {
    certs = makeTestCertificates();
    provider = new ProcessProvider({ maxWorkers: 2, stopGraceMs: 2_000 });
    platform = await createPlatform({
      providers: [provider],
      tls: { cert: certs.cert, key: certs.key, ca: certs.ca },
      authToken: TOKEN,
    });
  });
  afterAll(async () => {
    await platform?.close();
    certs?.remove();
  });

  it('runs a job end to end over TLS: its worker trusts the CA the provider passed it', async () => {
    const job = await platform.client.queue({ name: 'tls', command: 'echo over tls; echo "ca in env: ${HODEI_TLS_CA:+yes}"' });
    const lines = await collectLogs(platform.client, job.id);
    expect(textOf(lines, 'stdout')).toEqual(['over tls', 'ca in env: yes']);
    expect(await platform.client.wait(job.id)).toMatchObject({ state: 'SUCCEEDED', exitCode: 0 });
  });

  it('a separate client trusting the CA, with the token, is served', async () => {
    const client = createClient({ address: platform.address, tls: { ca: certs.ca }, authToken: TOKEN });
    try {
      expect(Array.isArray(await client.list())).toBe(true);
    } finally {
      client.close();
    }
  });

  it('refuses a plaintext client', async () => {
    const client = createClient({ address: platform.address, authToken: TOKEN });
    try {
      const error = await refusal(client.list());
      expect(error.code).toBe('UNAVAILABLE');
    } finally {
      client.close();
    }
  });

  it('a client that does not trust the CA refuses the server', async () => {
    const client = createClient({ address: platform.address, tls: { ca: certs.otherCa }, authToken: TOKEN });
    try {
      const error = await refusal(client.list());
      expect(error.code).toBe('UNAVAILABLE');
    } finally {
      client.close();
    }
  });

  it.each([
    ['no token', undefined, /requires an auth token/],
    ['a wrong token', 'not-the-token', /auth token was not accepted/],
  ])('answers UNAUTHENTICATED to a client with %s, on unary calls and streams', async (_, authToken, message) => {
    const client = createClient({ address: platform.address, tls: { ca: certs.ca }, ...(authToken ? { authToken } : {}) });
    try {
      const queued = await refusal(client.queue({ name: 'nope', command: 'echo should not run' }));
      expect(queued.code).toBe('UNAUTHENTICATED');
      expect(queued.message).toMatch(message);
      const streamed = await refusal(client.wait('job-any'));
      expect(streamed.code).toBe('UNAUTHENTICATED');
      const run = await refusal(client.run({ name: 'nope', command: 'echo should not run' }));
      expect(run.code).toBe('UNAUTHENTICATED');
      const logs = await refusal((async () => {
        for await (const line of client.logs('job-any')) void line;
      })());
      expect(logs.code).toBe('UNAUTHENTICATED');
    } finally {
      client.close();
    }
    expect((await platform.client.list()).some((job) => job.spec.name === 'nope')).toBe(false);
  });

  it('validates TLS material at the boundary, naming the field', async () => {
    const options = { providers: [new ProcessProvider()] };
    await expect(createPlatform({ ...options, tls: { cert: '/path/to/cert.pem', key: certs.key } })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      field: 'tls.cert',
    });
    await expect(createPlatform({ ...options, tls: { cert: certs.cert, key: certs.cert } })).rejects.toMatchObject({ field: 'tls.key' });
    await expect(createPlatform({ ...options, authToken: 'has space' })).rejects.toMatchObject({ field: 'authToken' });
    expect(() => createClient({ address: platform.address, tls: { ca: 'nope' } })).toThrow(/tls\.ca/);
  });
});
