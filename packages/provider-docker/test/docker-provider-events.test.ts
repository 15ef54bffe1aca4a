import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type Docker from 'dockerode';
import { HodeiError, type WorkerExit } from '@hodei/core';
import { DockerProvider } from '../src';

/** A fake engine: enough of dockerode for createWorker, the event stream and inspect. */
function fakeDocker(options: { imagePresent?: boolean; oomKilled?: boolean; pullError?: string } = {}) {
  const events = new PassThrough();
  const created: Record<string, unknown>[] = [];
  const removed: string[] = [];
  const notFound = () => Object.assign(new Error('no such thing'), { statusCode: 404 });
  const docker = {
    modem: {
      socketPath: '/fake.sock',
      followProgress: (_stream: unknown, done: (error: Error | null, output: unknown[]) => void) =>
        done(null, options.pullError ? [{ error: options.pullError }] : []),
    },
    ping: async () => 'OK',
    getImage: () => ({ inspect: async () => { if (!options.imagePresent) throw notFound(); return {}; } }),
    pull: async () => new PassThrough(),
    getEvents: async () => events,
    createContainer: async (spec: Record<string, unknown>) => {
      created.push(spec);
      return { id: `c-${created.length}`, start: async () => undefined, remove: async () => undefined };
    },
    getContainer: (id: string) => ({
      inspect: async () => ({ State: { OOMKilled: options.oomKilled ?? false, ExitCode: 137, Error: '' } }),
      stop: async () => undefined,
      remove: async () => void removed.push(id),
    }),
    listContainers: async () => [],
  };
  return { docker: docker as unknown as Docker, events, created, removed };
}

function dieEvent(containerId: string, workerId: string, exitCode: number): string {
  return `${JSON.stringify({ Type: 'container', Action: 'die', id: containerId, time: Math.floor(Date.now() / 1000), Actor: { ID: containerId, Attributes: { 'hodei.worker-id': workerId, 'hodei.managed': 'true', exitCode: String(exitCode) } } })}\n`;
}

const request = (workerId: string) => ({ workerId, serverAddress: '127.0.0.1:7000', otp: 'otp-1' });

describe('DockerProvider with a fake engine', () => {
  it('reports an out-of-memory death as "killed: out of memory", events split across chunks', async () => {
    const fake = fakeDocker({ imagePresent: true, oomKilled: true });
    const provider = new DockerProvider({ image: 'img', docker: fake.docker, memory: '64m', cpus: 0.5, binds: ['/a:/b:ro'], env: { X: '1' } });
    const exits: WorkerExit[] = [];
    provider.onWorkerExit((exit) => exits.push(exit));
    await provider.createWorker(request('w-1'));
    const spec = fake.created[0] as { Env: string[]; Labels: Record<string, string>; HostConfig: Record<string, unknown> };
    expect(spec.Env).toEqual(expect.arrayContaining(['X=1', 'HODEI_SERVER_ADDRESS=127.0.0.1:7000', 'HODEI_OTP_TOKEN=otp-1', 'HODEI_WORKER_ID=w-1']));
    expect(spec.Labels).toMatchObject({ 'hodei.managed': 'true', 'hodei.worker-id': 'w-1' });
    expect(spec.HostConfig).toMatchObject({ NetworkMode: 'host', Memory: 64 * 1024 ** 2, NanoCpus: 5e8, Binds: ['/a:/b:ro'], AutoRemove: false });
    const line = dieEvent('c-1', 'w-1', 137);
    fake.events.write(line.slice(0, 20));
    fake.events.write(line.slice(20));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(exits).toEqual([{ workerId: 'w-1', exitCode: 137, signal: 'SIGKILL', reason: 'killed: out of memory' }]);
    fake.events.write(line); // a repeat (replayed on reconnect) is not reported twice
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(exits).toHaveLength(1);
    await provider.close();
  });

  it('does not report containers it is destroying, nor containers of other servers', async () => {
    const fake = fakeDocker({ imagePresent: true });
    const provider = new DockerProvider({ image: 'img', docker: fake.docker });
    const exits: WorkerExit[] = [];
    provider.onWorkerExit((exit) => exits.push(exit));
    await provider.createWorker(request('w-1'));
    const destroying = provider.destroyWorker('w-1');
    fake.events.write(dieEvent('c-1', 'w-1', 143));
    fake.events.write(dieEvent('c-9', 'w-other', 1));
    await destroying;
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(exits).toEqual([]);
    expect(fake.removed).toEqual(['c-1']);
    await provider.close();
  });

  it('fails clearly on a missing image with pullPolicy never, and on a failed pull', async () => {
    const never = new DockerProvider({ image: 'nope:1', pullPolicy: 'never', docker: fakeDocker().docker });
    const error = await never.createWorker(request('w-1')).catch((caught: unknown) => caught);
    expect(HodeiError.isInstance(error) && error.code).toBe('PROVIDER_FAILED');
    expect((error as Error).message).toContain('image "nope:1" is not present');
    const pulling = new DockerProvider({ image: 'nope:2', docker: fakeDocker({ pullError: 'manifest unknown' }).docker });
    const pullError = await pulling.createWorker(request('w-2')).catch((caught: unknown) => caught);
    expect((pullError as Error).message).toBe('cannot pull image "nope:2": manifest unknown');
  });
});
