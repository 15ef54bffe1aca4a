import { afterEach, describe, expect, it } from 'vitest';
import type { EngineConfig } from '../engine/engine-config';
import { createPlatform, type Platform } from '../platform/create-platform';
import type { Provider, WorkerExit } from '../ports/provider';

/** What a conformance run needs: a fresh provider per test, and optionally how to dispose of it. */
export interface ProviderUnderTest<P extends Provider = Provider> {
  /** A new provider that starts real workers. */
  provider: P;
  /** Runs after the test, after `provider.close()`. */
  cleanup?: () => Promise<void>;
}

/** Optional hooks that let {@link providerConformance} check more of the provider. */
export interface ProviderConformanceOptions<P extends Provider = Provider> {
  /** Ends a worker outside `destroyWorker` (kill its process, `docker kill` its container). Without it that test is skipped. */
  killWorker?: (provider: P, workerId: string) => Promise<void>;
  /** Whether the worker's process or container is still alive. Without it, "stopped" is checked through the platform only. */
  isWorkerRunning?: (provider: P, workerId: string) => Promise<boolean>;
  /** The address workers are expected to receive; default the platform's own address. `false` skips the check. */
  serverAddress?: string | false;
  /** Engine timing for the platforms the suite starts. */
  engine?: Partial<EngineConfig>;
  /** Per-test timeout; default 30 s. */
  timeoutMs?: number;
}

async function eventually(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * The provider conformance suite (vitest): what the engine relies on from every provider. It starts real
 * embedded platforms, so the provider must start real workers that can reach 127.0.0.1.
 *
 * @example
 * // test/provider-conformance.test.ts; `docker` is a dockerode client
 * providerConformance('DockerProvider', async () => ({ provider: createDockerProvider({ image, maxWorkers: 2 }) }), {
 *   killWorker: async (_provider, workerId) => {
 *     await docker.getContainer(containerNameOf(workerId)).kill();
 *   },
 * });
 */
export function providerConformance<P extends Provider>(
  name: string,
  makeProvider: () => Promise<ProviderUnderTest<P>>,
  options: ProviderConformanceOptions<P> = {},
): void {
  const timeout = options.timeoutMs ?? 30_000;
  const engine: Partial<EngineConfig> = { cancelGraceMs: 1_000, ...options.engine };

  describe(`provider conformance: ${name}`, () => {
    const disposers: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (const dispose of disposers.splice(0).reverse()) await dispose().catch(() => undefined);
    });

    async function setUp(withPlatform: boolean): Promise<{ provider: P; platform: Platform | undefined; exits: WorkerExit[] }> {
      const underTest = await makeProvider();
      const provider = underTest.provider;
      disposers.push(async () => {
        await provider.close();
        await underTest.cleanup?.();
      });
      const exits: WorkerExit[] = [];
      disposers.push(async () => unsubscribe());
      const unsubscribe = provider.onWorkerExit((exit) => exits.push(exit));
      let platform: Platform | undefined;
      if (withPlatform) {
        platform = await createPlatform({ providers: [provider], ...engine });
        const started = platform;
        disposers.push(() => started.close());
      }
      return { provider, platform, exits };
    }

    async function runningJob(platform: Platform): Promise<{ jobId: string; workerId: string }> {
      const job = await platform.client.queue({ name: 'conformance-sleep', command: 'echo started; sleep 60', timeoutMs: 120_000 });
      let workerId = '';
      await eventually(
        async () => {
          const current = await platform.client.get(job.id);
          workerId = current.workerId ?? '';
          return current.state === 'RUNNING' && workerId !== '';
        },
        timeout / 2,
        'the job to be RUNNING',
      );
      return { jobId: job.id, workerId };
    }

    it('declares specification v1, a name and well-formed capabilities', async () => {
      const { provider } = await setUp(false);
      expect(provider.specificationVersion).toBe('v1');
      expect(typeof provider.name).toBe('string');
      expect(provider.name).not.toBe('');
      const { maxWorkers, workerCapacity, labels } = provider.capabilities;
      expect(Number.isInteger(maxWorkers) && maxWorkers >= 1).toBe(true);
      expect(Number.isInteger(workerCapacity) && workerCapacity >= 1).toBe(true);
      expect(typeof labels).toBe('object');
      for (const value of Object.values(labels)) expect(typeof value).toBe('string');
      const unsubscribe = provider.onWorkerExit(() => undefined);
      expect(typeof unsubscribe).toBe('function');
      unsubscribe();
    });

    it('resolves destroyWorker for an unknown worker, and close twice', async () => {
      const { provider } = await setUp(false);
      await expect(provider.destroyWorker('w-never-created')).resolves.toBeUndefined();
      await expect(provider.destroyWorker('w-never-created')).resolves.toBeUndefined();
      await provider.close();
      await provider.close();
    });

    it(
      'starts a worker that receives HODEI_SERVER_ADDRESS, HODEI_OTP_TOKEN and HODEI_WORKER_ID and runs a job',
      async () => {
        const { platform } = await setUp(true);
        const job = await platform!.client.queue({
          name: 'conformance-env',
          command: 'echo "$HODEI_WORKER_ID"; echo "$HODEI_SERVER_ADDRESS"',
        });
        const done = await platform!.client.wait(job.id);
        expect(done).toMatchObject({ state: 'SUCCEEDED', exitCode: 0 });
        const stdout: string[] = [];
        for await (const line of platform!.client.logs(job.id)) if (line.stream === 'stdout') stdout.push(line.text);
        // The worker registered, so it had the one-time token; it passes its id and the address on to jobs.
        expect(stdout[0]).toBe(done.workerId);
        const expected = options.serverAddress ?? platform!.address;
        if (expected !== false) expect(stdout[1]).toBe(expected);
      },
      timeout,
    );

    it(
      'destroyWorker stops the worker without reporting it as an exit, and is idempotent',
      async () => {
        const { provider, platform, exits } = await setUp(true);
        const job = await platform!.client.queue({ name: 'conformance-destroy', command: 'true' });
        const done = await platform!.client.wait(job.id);
        const workerId = done.workerId!;
        if (options.isWorkerRunning) expect(await options.isWorkerRunning(provider, workerId)).toBe(true);
        await provider.destroyWorker(workerId);
        if (options.isWorkerRunning) expect(await options.isWorkerRunning(provider, workerId)).toBe(false);
        await provider.destroyWorker(workerId);
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect(exits.filter((exit) => exit.workerId === workerId)).toEqual([]);
      },
      timeout,
    );

    it.skipIf(!options.killWorker)(
      'reports a worker that dies on its own through onWorkerExit',
      async () => {
        const { provider, exits } = await setUp(false);
        // Nothing listens there: the worker can only retry or give up; either way its end must be reported.
        const workerId = `w-conformance-${Date.now().toString(36)}`;
        await provider.createWorker({ workerId, serverAddress: '127.0.0.1:1', otp: 'conformance-otp' });
        await options.killWorker!(provider, workerId).catch(() => undefined);
        await eventually(() => exits.some((exit) => exit.workerId === workerId), 10_000, 'onWorkerExit');
        const exit = exits.find((entry) => entry.workerId === workerId)!;
        expect(typeof exit.reason).toBe('string');
        expect(exit.reason).not.toBe('');
        expect(exit.exitCode === null || Number.isInteger(exit.exitCode)).toBe(true);
        expect(exit.signal === null || typeof exit.signal === 'string').toBe(true);
        await provider.destroyWorker(workerId);
      },
      timeout,
    );

    it.skipIf(!options.killWorker)(
      'a worker killed mid-job is LOST within seconds and its job fails WORKER_LOST',
      async () => {
        const { provider, platform } = await setUp(true);
        const { jobId, workerId } = await runningJob(platform!);
        const killedAt = Date.now();
        await options.killWorker!(provider, workerId);
        const done = await platform!.client.wait(jobId);
        expect(done).toMatchObject({ state: 'FAILED', failureReason: 'WORKER_LOST' });
        expect(Date.now() - killedAt).toBeLessThan(10_000);
        expect((await platform!.store.getWorker(workerId))!.state).toBe('LOST');
      },
      timeout,
    );

    it(
      'close() stops every worker it started',
      async () => {
        const { provider, platform } = await setUp(true);
        const { workerId } = await runningJob(platform!);
        if (options.isWorkerRunning) expect(await options.isWorkerRunning(provider, workerId)).toBe(true);
        await provider.close();
        if (options.isWorkerRunning) expect(await options.isWorkerRunning(provider, workerId)).toBe(false);
        await provider.close();
      },
      timeout,
    );
  });
}
