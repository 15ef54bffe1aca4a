import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import {
  HodeiError,
  type CreateWorkerRequest,
  type Provider,
  type ProviderCapabilities,
  type WorkerExit,
} from '@hodei/core';
import {
  resolveProcessProviderOptions,
  type ProcessProviderOptions,
  type ResolvedProcessProviderOptions,
} from './process-provider-options';

interface WorkerProcess {
  child: ChildProcess;
  stopping: boolean;
  exited: Promise<void>;
  lastError: string;
}

/** Variables of this process that workers (and so jobs) must not inherit: the server's own secrets. */
const SERVER_SECRETS = ['HODEI_AUTH_TOKEN', 'HODEI_DATABASE_URL', 'DATABASE_URL'];

/** This process's environment less {@link SERVER_SECRETS}. */
function inheritedEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of SERVER_SECRETS) delete env[name];
  return env;
}

/**
 * Runs each worker as a child process of this one: the quickest way to get workers, for tests and
 * development. Each worker gets `HODEI_SERVER_ADDRESS`, `HODEI_OTP_TOKEN` and `HODEI_WORKER_ID`, and
 * `HODEI_TLS_CA` (the CA's PEM) when the server speaks TLS; it inherits this process's environment minus
 * the server's secrets `HODEI_AUTH_TOKEN`, `HODEI_DATABASE_URL` and `DATABASE_URL` (the database URL may
 * still be given to workers on purpose through the `env` option).
 *
 * @example
 * const hodei = await createPlatform({ providers: [new ProcessProvider({ maxWorkers: 4 })] });
 */
export class ProcessProvider implements Provider {
  /** The provider interface version this implements. */
  readonly specificationVersion = 'v1' as const;
  /** The provider's name (`process` unless `options.name` says otherwise). */
  readonly name: string;
  /** `maxWorkers`, `workerCapacity` and `labels` as resolved from the options. */
  readonly capabilities: ProviderCapabilities;
  private readonly options: ResolvedProcessProviderOptions;
  private readonly workers = new Map<string, WorkerProcess>();
  private readonly listeners = new Set<(exit: WorkerExit) => void>();

  constructor(options: ProcessProviderOptions = {}) {
    this.options = resolveProcessProviderOptions(options);
    this.name = this.options.name;
    this.capabilities = {
      maxWorkers: this.options.maxWorkers,
      workerCapacity: this.options.workerCapacity,
      labels: this.options.labels,
    };
  }

  /** Process ids of the workers alive now. */
  get pids(): number[] {
    return [...this.workers.values()].flatMap((worker) => (worker.child.pid ? [worker.child.pid] : []));
  }

  /**
   * Spawns the worker command with the registration variables in its environment; resolves once the process
   * has started. Rejects with `PROVIDER_FAILED` when the command cannot be started (e.g. not found).
   */
  async createWorker(request: CreateWorkerRequest): Promise<void> {
    const [program, ...args] = this.options.workerCommand;
    const env: NodeJS.ProcessEnv = {
      ...inheritedEnv(),
      ...this.options.env,
      HODEI_SERVER_ADDRESS: request.serverAddress,
      HODEI_OTP_TOKEN: request.otp,
      HODEI_WORKER_ID: request.workerId,
      HODEI_WORKER_CAPACITY: String(this.options.workerCapacity),
    };
    // The server decides TLS; and the client API's token is never the jobs' business, not even through `env`.
    if (request.tlsCa) env.HODEI_TLS_CA = request.tlsCa;
    else delete env.HODEI_TLS_CA;
    delete env.HODEI_AUTH_TOKEN;
    const child = spawn(program!, args, {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const worker: WorkerProcess = { child, stopping: false, lastError: '', exited: once(child, 'exit').then(() => undefined) };
    worker.exited.catch(() => undefined);
    this.workers.set(request.workerId, worker);
    child.stderr?.setEncoding('utf8').on('data', (text: string) => {
      const lines = text.trim().split('\n');
      worker.lastError = lines[lines.length - 1] ?? worker.lastError;
    });
    child.once('exit', (code, signal) => {
      this.workers.delete(request.workerId);
      if (worker.stopping) return;
      const detail = worker.lastError ? `: ${worker.lastError}` : '';
      const reason = signal ? `worker process killed by ${signal}${detail}` : `worker process exited with code ${code}${detail}`;
      for (const listener of this.listeners) listener({ workerId: request.workerId, exitCode: code, signal, reason });
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (error) => {
        this.workers.delete(request.workerId);
        reject(new HodeiError('PROVIDER_FAILED', `cannot start worker "${program}": ${error.message}`, { cause: error }));
      });
    });
  }

  /** SIGTERM twice (finish nothing: cancel running jobs), then SIGKILL after the grace period. */
  async destroyWorker(workerId: string): Promise<void> {
    const worker = this.workers.get(workerId);
    if (!worker) return;
    worker.stopping = true;
    worker.child.kill('SIGTERM');
    const again = setTimeout(() => worker.child.kill('SIGTERM'), 50);
    const kill = setTimeout(() => worker.child.kill('SIGKILL'), this.options.stopGraceMs);
    await worker.exited;
    clearTimeout(again);
    clearTimeout(kill);
  }

  /** Calls `listener` when a worker process exits without `destroyWorker` (crash, kill, exit code); returns an unsubscribe function. */
  onWorkerExit(listener: (exit: WorkerExit) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Stops every worker process (as `destroyWorker` does) and resolves once all have exited. */
  async close(): Promise<void> {
    await Promise.all([...this.workers.keys()].map((workerId) => this.destroyWorker(workerId)));
  }
}

/** The same provider under the name the seed's tests use. */
export const TestWorkerProvider = ProcessProvider;

/** Factory form of `new ProcessProvider(options)`. */
export function createProcessProvider(options?: ProcessProviderOptions): ProcessProvider {
  return new ProcessProvider(options);
}
