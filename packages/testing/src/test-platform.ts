import { createPlatform, type Job, type JobSpecInput, type LogLine, type Platform, type PlatformOptions, type Provider } from '@hodei/core';
import { ProcessProvider, type ProcessProviderOptions } from '@hodei/provider-process';

// Node 20.0-20.3 lack Symbol.asyncDispose; fall back to the registered symbol that later versions use.
const asyncDispose: typeof Symbol.asyncDispose =
  Symbol.asyncDispose ?? (Symbol.for('nodejs.asyncDispose') as typeof Symbol.asyncDispose);

/**
 * A hook that runs a function later, such as vitest's `afterAll`, `afterEach` or `onTestFinished`
 * (or jest's / `node:test`'s `after`). The test platform hands it its own `close()`.
 */
export type CleanupHook = (fn: () => Promise<void>) => unknown;

/** Options of {@link createTestPlatform}; all optional. */
export interface TestPlatformOptions extends Partial<Omit<PlatformOptions, 'providers'>> {
  /**
   * Options of the default `ProcessProvider`; default `{ maxWorkers: 2, stopGraceMs: 1000 }`.
   * Ignored when `providers` is given.
   */
  processProvider?: ProcessProviderOptions;
  /** Replaces the default process provider. */
  providers?: Provider[];
  /**
   * Pass vitest's `afterAll` to close the platform after the file's tests:
   * `createTestPlatform({ afterAll })`.
   */
  afterAll?: CleanupHook;
  /**
   * Pass vitest's `onTestFinished` (from inside a test) to close the platform when that test ends:
   * `createTestPlatform({ onTestFinished })`.
   */
  onTestFinished?: CleanupHook;
}

/** What {@link TestPlatform.run} resolves with once the job has ended. */
export interface RunResult {
  /** The job in its terminal state: check `job.state` and `job.exitCode`. */
  job: Job;
  /** Text of every stdout line, in order, without line endings. */
  stdout: string[];
  /** Text of every stderr line, in order, without line endings. */
  stderr: string[];
  /**
   * Every line in order (`seq`), with `stream` and `timestamp`: stdout, stderr, and the `system` lines the
   * platform itself adds (which are in neither `stdout` nor `stderr`).
   */
  lines: LogLine[];
}

/** A `Platform` (from `@hodei/core`) for tests, with a helper that runs one job to its end. */
export interface TestPlatform extends Platform, AsyncDisposable {
  /** The process provider, when the default one is used (its `pids` are the live workers). */
  readonly provider: ProcessProvider | undefined;
  /**
   * Queues a job, follows its logs until it ends and resolves with its final state and output. A string
   * is shorthand for `{ name: <the string>, command: <the string> }`. It does not reject when the job
   * fails: assert on `job.state` / `job.exitCode`.
   *
   * @example
   * const { job, stdout } = await hodei.run('echo hello');
   * expect(job.state).toBe('SUCCEEDED');
   * expect(stdout).toEqual(['hello']);
   */
  run(spec: JobSpecInput | string): Promise<RunResult>;
  /** Stops the workers and the server; idempotent. Also what `await using` and the cleanup hooks call. */
  close(): Promise<void>;
}

/**
 * Starts a real Hodei server inside this process, on a free port of 127.0.0.1, with the in-memory store
 * and workers as local child processes (`hodei-worker`), ready for tests.
 *
 * @example Close it with vitest's hooks
 * ```ts
 * import { afterAll, expect, test } from 'vitest';
 * import { createTestPlatform } from '@hodei/testing';
 *
 * const hodei = await createTestPlatform({ afterAll });
 *
 * test('runs a shell pipeline', async () => {
 *   const { job, stdout } = await hodei.run('echo hi | tr a-z A-Z');
 *   expect(job.state).toBe('SUCCEEDED');
 *   expect(stdout).toEqual(['HI']);
 * });
 * ```
 *
 * @example Or with await using (TypeScript 5.2+), or an explicit close()
 * ```ts
 * await using hodei = await createTestPlatform();
 * const { job } = await hodei.run({ name: 'fails', command: 'exit 3' });
 * // job.state === 'FAILED', job.exitCode === 3
 * ```
 */
export async function createTestPlatform(options: TestPlatformOptions = {}): Promise<TestPlatform> {
  const { processProvider, providers, afterAll, onTestFinished, ...platformOptions } = options;
  const provider = providers ? undefined : new ProcessProvider({ maxWorkers: 2, stopGraceMs: 1_000, ...processProvider });
  const platform = await createPlatform({ host: '127.0.0.1', port: 0, ...platformOptions, providers: providers ?? [provider!] });

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await platform.close();
      await provider?.close();
    })());

  async function run(input: JobSpecInput | string): Promise<RunResult> {
    const spec = typeof input === 'string' ? { name: input.slice(0, 200) || 'job', command: input } : input;
    const queued = await platform.client.queue(spec);
    const lines: LogLine[] = [];
    for await (const line of platform.client.logs(queued.id, { follow: true })) lines.push(line);
    const job = await platform.client.wait(queued.id);
    const textOf = (stream: LogLine['stream']) => lines.filter((line) => line.stream === stream).map((line) => line.text);
    return { job, stdout: textOf('stdout'), stderr: textOf('stderr'), lines };
  }

  const testPlatform: TestPlatform = {
    address: platform.address,
    client: platform.client,
    store: platform.store,
    controller: platform.controller,
    provider,
    run,
    close,
    stop: async (stopOptions) => {
      const result = await platform.stop(stopOptions);
      await close();
      return result;
    },
    [asyncDispose]: close,
  };
  afterAll?.(close);
  onTestFinished?.(close);
  return testPlatform;
}
