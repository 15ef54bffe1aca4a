import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPlatform, HodeiError, type Platform } from '@hodei/core';
import { ProcessProvider } from '../src';
import { collectLogs, textOf } from './helpers';

describe('bad input and hostile output', () => {
  let platform: Platform;
  beforeAll(async () => {
    platform = await createPlatform({ providers: [new ProcessProvider({ maxWorkers: 2 })] });
  });
  afterAll(() => platform.close());

  async function stillServes(): Promise<void> {
    const job = await platform.client.queue({ name: 'canary', command: 'echo alive' });
    expect(textOf(await collectLogs(platform.client, job.id), 'stdout')).toEqual(['alive']);
  }

  it('binary and invalid UTF-8 output arrives as text, the job succeeds', async () => {
    const job = await platform.client.queue({ name: 'binary', command: "printf 'ok\\n\\xff\\xfe\\x00\\x01bin\\n'; head -c 4096 /dev/urandom; echo" });
    const lines = await collectLogs(platform.client, job.id);
    expect(textOf(lines, 'stdout')[0]).toBe('ok');
    expect((await platform.client.wait(job.id)).state).toBe('SUCCEEDED');
  });

  it('a single 10 MB line arrives whole, split into pieces, none lost', async () => {
    const job = await platform.client.queue({ name: 'long line', command: "head -c 10000000 /dev/zero | tr '\\0' x; echo" });
    const pieces = textOf(await collectLogs(platform.client, job.id), 'stdout');
    expect(pieces.length).toBeGreaterThan(1);
    expect(pieces.join('')).toBe('x'.repeat(10_000_000));
  });

  it('a spec over 1 MB is refused naming the spec; 1,000 env vars run', async () => {
    const refused = await platform.client.queue({ name: 'big', command: `echo ${'y'.repeat(1024 * 1024)}` }).catch((error: unknown) => error);
    expect(HodeiError.isInstance(refused) && `${refused.code}:${refused.field}`).toBe('INVALID_ARGUMENT:spec');
    const env = Object.fromEntries(Array.from({ length: 1000 }, (_, index) => [`VAR_${index}`, `value-${index}`]));
    const job = await platform.client.queue({ name: 'env', command: 'echo "$VAR_999"', env });
    expect(textOf(await collectLogs(platform.client, job.id), 'stdout')).toEqual(['value-999']);
  });

  it('10,000 env vars within the size limit either run or fail with a clear reason, never hang', async () => {
    const env = Object.fromEntries(Array.from({ length: 10_000 }, (_, index) => [`V${index}`, 'x'.repeat(80)]));
    const job = await platform.client.queue({ name: 'env flood', command: 'echo "$V9999" | head -c 3', env });
    const done = await platform.client.wait(job.id);
    if (done.state === 'SUCCEEDED') expect(done.exitCode).toBe(0);
    else expect(done).toMatchObject({ state: 'FAILED', failureReason: 'FAILED_TO_START' });
    await stillServes();
  });

  it('garbage bytes on the gRPC port do not disturb the server', async () => {
    const [host, port] = platform.address.split(':');
    await new Promise<void>((resolve) => {
      const socket = connect(Number(port), host!, () => {
        socket.write(Buffer.from('GET / HTTP/1.1\r\n\r\n\x00\xff garbage \x16\x03\x01'));
        socket.write(Buffer.alloc(64 * 1024, 0xab));
        setTimeout(() => socket.destroy(), 100);
      });
      socket.on('error', () => undefined);
      socket.on('close', () => resolve());
    });
    await stillServes();
  });
});
