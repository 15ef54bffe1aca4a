import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, createPlatform, HodeiError, type Platform } from '../src';
import { idleProvider } from './idle-provider';

async function failure(run: () => Promise<unknown>): Promise<string> {
  try {
    await run();
  } catch (error) {
    if (!HodeiError.isInstance(error)) throw error;
    return `${error.code}${error.field ? `:${error.field}` : ''}`;
  }
  return 'no error';
}

async function drain(iterable: AsyncIterable<unknown>): Promise<void> {
  for await (const item of iterable) void item;
}

describe('client errors', () => {
  let platform: Platform;
  beforeAll(async () => {
    platform = await createPlatform({ providers: [idleProvider] });
  });
  afterAll(() => platform.close());

  it('unknown job ids are NOT_FOUND for get, cancel, wait, watch and logs', async () => {
    const { client } = platform;
    expect(await failure(() => client.get('job-x'))).toBe('NOT_FOUND:id');
    expect(await failure(() => client.cancel('job-x'))).toBe('NOT_FOUND:id');
    expect(await failure(() => client.wait('job-x'))).toBe('NOT_FOUND:id');
    expect(await failure(() => drain(client.watch('job-x')))).toBe('NOT_FOUND:id');
    expect(await failure(() => drain(client.logs('job-x', { follow: true })))).toBe('NOT_FOUND:id');
  });

  it('an unknown state filter is INVALID_ARGUMENT naming the field', async () => {
    expect(await failure(() => platform.client.list({ states: ['DONE' as never] }))).toBe('INVALID_ARGUMENT:states');
  });

  it('a bad address is refused at once, an unreachable server is UNAVAILABLE naming it', async () => {
    expect(await failure(async () => createClient({ address: 'nowhere' }))).toBe('INVALID_ARGUMENT:address');
    const client = createClient({ address: '127.0.0.1:1' });
    try {
      const error = await client.get('job-x').catch((caught: HodeiError) => caught);
      expect(error).toMatchObject({ code: 'UNAVAILABLE' });
      expect((error as Error).message).toContain('127.0.0.1:1');
    } finally {
      client.close();
    }
  });

  it('a queued job with no worker yet can be cancelled, and listed newest first', async () => {
    const first = await platform.client.queue({ name: 'a', command: 'true', labels: { none: 'x' } });
    const second = await platform.client.queue({ name: 'b', command: 'true', labels: { none: 'x' } });
    const listed = await platform.client.list({ states: ['QUEUED'] });
    expect(listed.map((job) => job.id)).toEqual([second.id, first.id]);
    expect((await platform.client.cancel(first.id)).state).toBe('CANCELLED');
    expect((await platform.client.wait(first.id)).state).toBe('CANCELLED');
  });
});

describe('a server that takes the connection but does not answer', () => {
  it('fails a short call with UNAVAILABLE after callTimeoutMs instead of waiting for ever', async () => {
    const { createServer } = await import('node:net');
    const silent = createServer(() => undefined); // accepts, never speaks HTTP/2
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const address = `127.0.0.1:${(silent.address() as { port: number }).port}`;
    const client = createClient({ address, callTimeoutMs: 300 });
    try {
      const started = Date.now();
      const error = await client.list().then(
        () => undefined,
        (failure: unknown) => failure,
      );
      expect(error).toBeInstanceOf(HodeiError);
      expect(error).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringContaining(`no answer from the Hodei server at ${address}`) });
      expect(Date.now() - started).toBeLessThan(10_000);
      // A queue that ran out of time may have queued its job all the same: its error says so.
      await expect(client.queue({ name: 'x', command: 'true' })).rejects.toMatchObject({
        code: 'UNAVAILABLE',
        message: expect.stringContaining('the job may have been queued all the same'),
      });
    } finally {
      client.close();
      silent.close();
    }
  });

  it('refuses a callTimeoutMs that is not a positive number, naming the field', () => {
    expect(() => createClient({ address: '127.0.0.1:1', callTimeoutMs: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', field: 'callTimeoutMs' }));
  });
});

describe('a closed client', () => {
  it('rejects every call with CLOSED, a HodeiError', async () => {
    const client = createClient({ address: '127.0.0.1:1' });
    client.close();
    const failures = await Promise.all([
      client.get('job-x').catch((error: unknown) => error),
      client.queue({ name: 'x', command: 'true' }).catch((error: unknown) => error),
      client.list().catch((error: unknown) => error),
      client.wait('job-x').catch((error: unknown) => error),
      client.run({ name: 'x', command: 'true' }).catch((error: unknown) => error),
      (async () => {
        for await (const line of client.logs('job-x')) return line;
      })().catch((error: unknown) => error),
    ]);
    for (const failure of failures) {
      expect(HodeiError.isInstance(failure)).toBe(true);
      expect(failure).toMatchObject({ code: 'CLOSED' });
    }
  });
});

describe('createPlatform options', () => {
  it('refuses an empty host, naming it', async () => {
    await expect(createPlatform({ providers: [idleProvider], host: '' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'host' });
  });
});
