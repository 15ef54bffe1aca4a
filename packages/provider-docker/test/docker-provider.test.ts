import { afterEach, describe, expect, it } from 'vitest';
import Docker from 'dockerode';
import { createPlatform, HodeiError, type Platform } from '@hodei/core';
import { providerConformance } from '@hodei/core/testing';
import { containerNameOf, createDockerProvider, DockerProvider, MANAGED_LABEL, WORKER_ID_LABEL } from '../src';
import { makeTestCertificates } from '../../provider-process/test/certificates';
import { collectLogs, containersOf, docker, eventually, image, isRunning, noDocker, textOf } from './helpers';

function codeOf(run: () => unknown): string {
  try {
    run();
    return 'no error';
  } catch (error) {
    return HodeiError.isInstance(error) ? `${error.code}:${error.field}` : String(error);
  }
}

describe('DockerProvider options and engine errors (no engine needed)', () => {
  it('validates options at the factory, naming the field', () => {
    expect(codeOf(() => createDockerProvider({} as never))).toBe('INVALID_ARGUMENT:image');
    expect(codeOf(() => createDockerProvider({ image: 'x', memory: 'lots' }))).toBe('INVALID_ARGUMENT:memory');
    expect(codeOf(() => createDockerProvider({ image: 'x', memory: 1024 }))).toBe('INVALID_ARGUMENT:memory');
    expect(codeOf(() => createDockerProvider({ image: 'x', cpus: 0 }))).toBe('INVALID_ARGUMENT:cpus');
    expect(codeOf(() => createDockerProvider({ image: 'x', maxWorkers: 0 }))).toBe('INVALID_ARGUMENT:maxWorkers');
    expect(codeOf(() => createDockerProvider({ image: 'x', pullPolicy: 'always' as never }))).toBe('INVALID_ARGUMENT:pullPolicy');
    expect(codeOf(() => createDockerProvider({ image: 'x', binds: ['nocolon'] }))).toBe('INVALID_ARGUMENT:binds');
    expect(codeOf(() => createDockerProvider({ image: 'x', env: { A: 1 as never } }))).toBe('INVALID_ARGUMENT:env.A');
    const provider = createDockerProvider({ image: 'x', memory: '512m', cpus: 1.5, maxWorkers: 3, labels: { pool: 'docker' } });
    expect(provider.capabilities).toEqual({ maxWorkers: 3, workerCapacity: 1, labels: { pool: 'docker' } });
    expect(provider.name).toBe('docker');
  });

  it('ping() names the engine address when it cannot be reached', async () => {
    const provider = new DockerProvider({ image: 'x', docker: new Docker({ socketPath: '/nonexistent/docker.sock' }) });
    const error = await provider.ping().then(() => undefined, (caught: unknown) => caught);
    expect(HodeiError.isInstance(error) && error.code).toBe('UNAVAILABLE');
    expect((error as Error).message).toMatch(/^cannot reach the Docker engine at unix:\/\/\/nonexistent\/docker\.sock/);
  });
});

describe.skipIf(noDocker)('DockerProvider against the real engine', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });

  async function start(options: Partial<Parameters<typeof createDockerProvider>[0]> = {}, engine: Parameters<typeof createPlatform>[0] extends infer O ? Partial<O> : never = {}) {
    const provider = createDockerProvider({ image, maxWorkers: 2, stopTimeoutSeconds: 2, ...options });
    const platform = await createPlatform({ providers: [provider], cancelGraceMs: 1_000, ...engine });
    cleanups.push(() => platform.close());
    return { provider, platform };
  }

  async function onlyWorkerId(platform: Platform): Promise<string> {
    let id = '';
    await eventually(async () => {
      id = (await platform.store.listWorkers())[0]?.id ?? '';
      return id !== '';
    }, 10_000, 'a worker record');
    return id;
  }

  it('the seed flow: queued, container with the three variables, READY, runs, streams, SUCCEEDED, removed when idle', async () => {
    const { platform } = await start({}, { idleTimeoutMs: 500 });
    // 1. queued
    const job = await platform.client.queue({ name: 'docker-flow', command: 'echo "hello from $HODEI_WORKER_ID"; seq 1 3 | tr 0-9 a-j; cat /etc/os-release | grep -c PRETTY_NAME' });
    expect(job.state).toBe('QUEUED');
    // 2. a container is created for the worker, with the three variables and the labels
    const workerId = await onlyWorkerId(platform);
    await eventually(async () => (await containersOf(workerId)).length === 1, 10_000, 'the container');
    const inspected = await docker.getContainer(containerNameOf(workerId)).inspect();
    const env = Object.fromEntries(inspected.Config.Env.map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]));
    expect(env.HODEI_SERVER_ADDRESS).toBe(platform.address);
    expect(env.HODEI_WORKER_ID).toBe(workerId);
    expect(env.HODEI_OTP_TOKEN).toMatch(/.{16,}/);
    expect(inspected.Config.Labels).toMatchObject({ [MANAGED_LABEL]: 'true', [WORKER_ID_LABEL]: workerId });
    expect(inspected.Config.Image).toBe(image);
    expect(inspected.HostConfig).toMatchObject({ NetworkMode: 'host', AutoRemove: false });
    // 3-6. the job runs on it, its logs stream, it succeeds
    const lines = await collectLogs(platform.client, job.id);
    expect(textOf(lines, 'stdout')).toEqual([`hello from ${workerId}`, 'b', 'c', 'd', '1']);
    const done = await platform.client.wait(job.id);
    expect(done).toMatchObject({ state: 'SUCCEEDED', exitCode: 0, workerId });
    // the worker registered (READY) before it ran the job
    const events = (await platform.store.listAudit(workerId)).map((event) => event.eventType);
    expect(events.indexOf('worker.registered')).toBeGreaterThan(events.indexOf('worker.provisioned'));
    // 7. idle for 500 ms: terminated and its container removed
    await eventually(async () => (await containersOf(workerId)).length === 0, 15_000, 'the idle container to be removed');
    await eventually(async () => (await platform.store.getWorker(workerId))?.state === 'TERMINATED', 5_000, 'TERMINATED');
  });

  it('over TLS: the container gets the CA as PEM in HODEI_TLS_CA and runs the job over it', async () => {
    const certs = makeTestCertificates();
    cleanups.push(async () => certs.remove());
    const { platform } = await start({}, { tls: { cert: certs.cert, key: certs.key, ca: certs.ca } });
    const job = await platform.client.queue({ name: 'docker-tls', command: 'echo over tls' });
    const workerId = await onlyWorkerId(platform);
    await eventually(async () => (await containersOf(workerId)).length === 1, 10_000, 'the container');
    const inspected = await docker.getContainer(containerNameOf(workerId)).inspect();
    expect(inspected.Config.Env).toContain(`HODEI_TLS_CA=${certs.ca}`);
    const lines = await collectLogs(platform.client, job.id);
    expect(textOf(lines, 'stdout')).toEqual(['over tls']);
    expect(await platform.client.wait(job.id)).toMatchObject({ state: 'SUCCEEDED', workerId });
  });

  it('enforces the memory limit: a job allocating past 64m is killed and reported, not a hang', async () => {
    const { platform } = await start({ memory: '64m', cpus: 1 });
    const job = await platform.client.queue({
      name: 'oom',
      command: 'node -e "const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1))"',
      timeoutMs: 60_000,
    });
    const done = await platform.client.wait(job.id);
    expect(done.state).toBe('FAILED');
    // The kernel kills the biggest process in the container: the job (exit 137) or the worker itself.
    if (done.failureReason === 'EXIT_CODE') expect(done.signal ?? String(done.exitCode)).toMatch(/^(SIGKILL|137)$/);
    else expect(done.failureReason).toBe('WORKER_LOST');
    const inspected = await docker.getContainer(containerNameOf(done.workerId!)).inspect();
    expect(inspected.HostConfig).toMatchObject({ Memory: 64 * 1024 ** 2, MemorySwap: 64 * 1024 ** 2, NanoCpus: 1e9 });
  }, 60_000);

  it('notices a container killed from outside mid-job within seconds: the job fails WORKER_LOST', async () => {
    const { platform } = await start();
    const job = await platform.client.queue({ name: 'killed', command: 'echo started; sleep 60' });
    let workerId = '';
    await eventually(async () => {
      const current = await platform.client.get(job.id);
      workerId = current.workerId ?? '';
      return current.state === 'RUNNING';
    }, 20_000, 'RUNNING');
    const killedAt = Date.now();
    await docker.getContainer(containerNameOf(workerId)).kill();
    const done = await platform.client.wait(job.id);
    expect(Date.now() - killedAt).toBeLessThan(5_000);
    expect(done).toMatchObject({ state: 'FAILED', failureReason: 'WORKER_LOST' });
    const worker = (await platform.store.getWorker(workerId))!;
    expect(worker.state).toBe('LOST');
    await eventually(async () => (await containersOf(workerId)).length === 0, 10_000, 'the lost container to be removed');
  });

  it('reconcile removes managed containers whose worker is not live, and keeps the others', async () => {
    const provider = createDockerProvider({ image });
    cleanups.push(() => provider.close());
    const make = (workerId: string) =>
      docker.createContainer({
        name: `hodei-test-${workerId}`,
        Image: image,
        Cmd: ['sleep', '60'],
        Labels: { [MANAGED_LABEL]: 'true', [WORKER_ID_LABEL]: workerId },
        HostConfig: { NetworkMode: 'host' },
      });
    const suffix = Date.now().toString(36);
    const orphan = await make(`w-orphan-${suffix}`);
    const live = await make(`w-live-${suffix}`);
    cleanups.push(() => live.remove({ force: true }), () => orphan.remove({ force: true }));
    await orphan.start();
    const removed = await provider.reconcile([`w-live-${suffix}`]);
    expect(removed).toContain(`w-orphan-${suffix}`);
    expect(removed).not.toContain(`w-live-${suffix}`);
    expect(await containersOf(`w-orphan-${suffix}`)).toEqual([]);
    expect(await containersOf(`w-live-${suffix}`)).toHaveLength(1);
  });

  it('a missing image with pullPolicy never fails the job PROVISIONING_FAILED, naming the image', async () => {
    const missing = `hodei-missing-${Date.now().toString(36)}:none`;
    const { platform } = await start({ image: missing, pullPolicy: 'never' });
    const job = await platform.client.queue({ name: 'no-image', command: 'true' });
    const done = await platform.client.wait(job.id);
    expect(done).toMatchObject({ state: 'FAILED', failureReason: 'PROVISIONING_FAILED' });
    expect(done.errorMessage).toContain(missing);
    expect(done.errorMessage).toContain('pullPolicy is "never"');
  });

  it('honours maxWorkers: 6 jobs on maxWorkers 2 never run more than 2 containers', async () => {
    const { platform } = await start({ maxWorkers: 2 });
    let peak = 0;
    const sampler = setInterval(() => {
      void docker
        .listContainers({ filters: { label: [`${MANAGED_LABEL}=true`] } })
        .then((list) => (peak = Math.max(peak, list.filter((info) => info.Image === image).length)));
    }, 100);
    const jobs = await Promise.all(Array.from({ length: 6 }, (_, index) => platform.client.queue({ name: `m${index}`, command: `echo ${index}` })));
    const results = await Promise.all(jobs.map((queued) => platform.client.wait(queued.id)));
    clearInterval(sampler);
    expect(results.map((result) => result.state)).toEqual(Array(6).fill('SUCCEEDED'));
    expect(peak).toBeLessThanOrEqual(2);
  });
});

describe.skipIf(noDocker)('DockerProvider conformance', () => {
  providerConformance(
    'DockerProvider',
    async () => ({ provider: createDockerProvider({ image, maxWorkers: 2, stopTimeoutSeconds: 2 }) }),
    {
      killWorker: async (_provider, workerId) => {
        await docker.getContainer(containerNameOf(workerId)).kill();
      },
      isWorkerRunning: async (_provider, workerId) => isRunning(workerId),
    },
  );
});
