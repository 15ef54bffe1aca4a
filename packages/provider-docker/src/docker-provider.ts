import Docker from 'dockerode';
import {
  HodeiError,
  type CreateWorkerRequest,
  type Provider,
  type ProviderCapabilities,
  type WorkerExit,
} from '@hodei/core';
import {
  resolveDockerProviderOptions,
  type DockerProviderOptions,
  type ResolvedDockerProviderOptions,
} from './docker-provider-options';

/** Container label marking containers this provider manages. */
export const MANAGED_LABEL = 'hodei.managed';
/** Container label holding the worker id. */
export const WORKER_ID_LABEL = 'hodei.worker-id';
/** Container label holding the provider name. */
export const PROVIDER_LABEL = 'hodei.provider';

interface WorkerContainer {
  workerId: string;
  containerId: string | undefined;
  /** destroyWorker or close was called: its end is ours, not reported. */
  stopping: boolean;
  /** Its end was reported through onWorkerExit already. */
  reported: boolean;
  destroyed: Promise<void> | undefined;
}

interface EngineEvent {
  Type?: string;
  Action?: string;
  status?: string;
  id?: string;
  time?: number;
  timeNano?: number;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
}

function statusCode(error: unknown): number | undefined {
  const code = (error as { statusCode?: unknown } | null)?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

function messageOf(error: unknown): string {
  const json = (error as { json?: { message?: unknown } } | null)?.json;
  if (json && typeof json.message === 'string') return json.message;
  return error instanceof Error ? error.message : String(error);
}

/** The container name of a worker: `hodei-<workerId>`. */
export function containerNameOf(workerId: string): string {
  return `hodei-${workerId}`;
}

/**
 * Runs each worker as a Docker container, through the engine API (dockerode). Each container gets
 * `HODEI_SERVER_ADDRESS`, `HODEI_OTP_TOKEN` and `HODEI_WORKER_ID` (plus `HODEI_TLS_CA`, the CA's PEM, when
 * the server speaks TLS), the labels `hodei.managed=true` and
 * `hodei.worker-id=<id>`, and host networking unless told otherwise. It follows the engine's event stream,
 * so a container that dies or is removed outside `destroyWorker` is reported at once.
 *
 * @example
 * const hodei = await createPlatform({ providers: [createDockerProvider({ image: 'hodei-worker:local', memory: '512m' })] });
 */
export class DockerProvider implements Provider {
  /** The provider interface version this implements. */
  readonly specificationVersion = 'v1' as const;
  /** The provider's name (`docker` unless `options.name` says otherwise). */
  readonly name: string;
  /** `maxWorkers`, `workerCapacity` and `labels` as resolved from the options. */
  readonly capabilities: ProviderCapabilities;
  /** The dockerode client in use (the one passed as `options.docker`, or one for DOCKER_HOST / the default socket). */
  readonly docker: Docker;
  private readonly options: ResolvedDockerProviderOptions;
  private readonly workers = new Map<string, WorkerContainer>();
  private readonly listeners = new Set<(exit: WorkerExit) => void>();
  private events: Promise<NodeJS.ReadableStream> | undefined;
  private eventStream: NodeJS.ReadableStream | undefined;
  private lastEventSeconds = 0;
  private closed = false;

  constructor(options: DockerProviderOptions) {
    this.options = resolveDockerProviderOptions(options);
    this.docker = options.docker ?? new Docker();
    this.name = this.options.name;
    this.capabilities = {
      maxWorkers: this.options.maxWorkers,
      workerCapacity: this.options.workerCapacity,
      labels: this.options.labels,
    };
  }

  /** The image worker containers run. */
  get image(): string {
    return this.options.image;
  }

  /** Worker ids with a container alive (or being stopped) now. */
  get workerIds(): string[] {
    return [...this.workers.keys()];
  }

  /** Where the engine is, for messages: the socket path or host:port. */
  get engineAddress(): string {
    const modem = (this.docker as unknown as { modem?: { socketPath?: unknown; host?: unknown; port?: unknown } }).modem;
    if (typeof modem?.socketPath === 'string') return `unix://${modem.socketPath}`;
    if (typeof modem?.host === 'string') return `${modem.host}${modem.port ? `:${String(modem.port)}` : ''}`;
    return 'the default socket';
  }

  /** Checks the engine answers; throws `UNAVAILABLE` naming where it looked. */
  async ping(): Promise<void> {
    try {
      await this.docker.ping();
    } catch (error) {
      throw new HodeiError('UNAVAILABLE', `cannot reach the Docker engine at ${this.engineAddress}: ${messageOf(error)}`, {
        cause: error,
      });
    }
  }

  /** Creates and starts the worker's container (pulling the image first under `if-not-present`); resolves once it runs. Rejects with `PROVIDER_FAILED` when the image is missing or the container cannot be created or started, and with `CLOSED` after `close()`. */
  async createWorker(request: CreateWorkerRequest): Promise<void> {
    if (this.closed) throw new HodeiError('CLOSED', `provider ${this.name} is closed`);
    await this.ensureImage();
    await this.followEvents();
    const worker: WorkerContainer = {
      workerId: request.workerId,
      containerId: undefined,
      stopping: false,
      reported: false,
      destroyed: undefined,
    };
    this.workers.set(request.workerId, worker);
    const serverAddress = this.options.serverAddressForContainers?.(request.serverAddress) ?? request.serverAddress;
    const env = {
      ...this.options.env,
      HODEI_SERVER_ADDRESS: serverAddress,
      HODEI_OTP_TOKEN: request.otp,
      HODEI_WORKER_ID: request.workerId,
      HODEI_WORKER_CAPACITY: String(this.options.workerCapacity),
      ...(request.tlsCa ? { HODEI_TLS_CA: request.tlsCa } : {}),
    };
    let container: Docker.Container;
    try {
      container = await this.docker.createContainer({
        name: containerNameOf(request.workerId),
        Image: this.options.image,
        Env: Object.entries(env).map(([key, value]) => `${key}=${value}`),
        Labels: { [MANAGED_LABEL]: 'true', [WORKER_ID_LABEL]: request.workerId, [PROVIDER_LABEL]: this.name },
        HostConfig: {
          NetworkMode: this.options.networkMode,
          AutoRemove: false,
          Init: this.options.init,
          ...(this.options.memory === undefined ? {} : { Memory: this.options.memory, MemorySwap: this.options.memory }),
          ...(this.options.nanoCpus === undefined ? {} : { NanoCpus: this.options.nanoCpus }),
          ...(this.options.binds.length === 0 ? {} : { Binds: this.options.binds }),
        },
      });
    } catch (error) {
      this.workers.delete(request.workerId);
      throw new HodeiError('PROVIDER_FAILED', `cannot create a container from image "${this.options.image}": ${messageOf(error)}`, {
        cause: error,
      });
    }
    worker.containerId = container.id;
    try {
      await container.start();
    } catch (error) {
      worker.stopping = true;
      await container.remove({ force: true }).catch(() => undefined);
      this.workers.delete(request.workerId);
      throw new HodeiError('PROVIDER_FAILED', `cannot start a container from image "${this.options.image}": ${messageOf(error)}`, {
        cause: error,
      });
    }
    if (this.closed) await this.destroyWorker(request.workerId);
  }

  /** Stops the container (SIGTERM, SIGKILL after `stopTimeoutSeconds`), then removes it. Idempotent. */
  async destroyWorker(workerId: string): Promise<void> {
    let worker = this.workers.get(workerId);
    if (!worker) {
      worker = { workerId, containerId: undefined, stopping: true, reported: true, destroyed: undefined };
    }
    worker.stopping = true;
    worker.destroyed ??= (async () => {
      const container = this.docker.getContainer(worker.containerId ?? containerNameOf(workerId));
      try {
        await container.stop({ t: this.options.stopTimeoutSeconds });
      } catch (error) {
        // 404: already gone. 304 (already stopped) or anything else: removal with force below.
        if (statusCode(error) === 404) return;
      }
      try {
        await container.remove({ force: true });
      } catch (error) {
        const code = statusCode(error);
        // 404: gone; 409: removal already in progress.
        if (code !== 404 && code !== 409) {
          throw new HodeiError('PROVIDER_FAILED', `cannot remove container of worker ${workerId}: ${messageOf(error)}`, {
            cause: error,
          });
        }
      }
    })().finally(() => {
      if (this.workers.get(workerId) === worker) this.workers.delete(workerId);
    });
    return worker.destroyed;
  }

  /** Calls `listener` when a worker container dies or is removed outside `destroyWorker`; returns an unsubscribe function. */
  onWorkerExit(listener: (exit: WorkerExit) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Removes managed containers (label `hodei.managed=true`) whose worker is not in `liveWorkerIds` and
   * not started by this provider: leftovers of a server that died. Returns the worker ids removed.
   */
  async reconcile(liveWorkerIds: Iterable<string>): Promise<string[]> {
    const live = new Set(liveWorkerIds);
    const containers = await this.docker.listContainers({ all: true, filters: { label: [`${MANAGED_LABEL}=true`] } });
    const removed: string[] = [];
    await Promise.all(
      containers.map(async (info) => {
        const workerId = info.Labels?.[WORKER_ID_LABEL] ?? '';
        if (live.has(workerId) || this.workers.has(workerId)) return;
        try {
          await this.docker.getContainer(info.Id).remove({ force: true });
          removed.push(workerId || info.Id);
        } catch (error) {
          if (statusCode(error) !== 404 && statusCode(error) !== 409) throw error;
        }
      }),
    );
    return removed;
  }

  /** Destroys every worker container of this provider and stops following engine events; idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.workers.keys()].map((workerId) => this.destroyWorker(workerId)));
    const stream = this.eventStream;
    this.eventStream = undefined;
    this.events = undefined;
    (stream as { destroy?: () => void } | undefined)?.destroy?.();
  }

  // ---- internals --------------------------------------------------------------------------------

  private async ensureImage(): Promise<void> {
    const image = this.options.image;
    try {
      await this.docker.getImage(image).inspect();
      return;
    } catch (error) {
      if (statusCode(error) !== 404) {
        throw new HodeiError('PROVIDER_FAILED', `cannot inspect image "${image}" at ${this.engineAddress}: ${messageOf(error)}`, {
          cause: error,
        });
      }
    }
    if (this.options.pullPolicy === 'never') {
      throw new HodeiError(
        'PROVIDER_FAILED',
        `image "${image}" is not present on the Docker engine and pullPolicy is "never"; build or load it first (npm run docker:image)`,
      );
    }
    try {
      const stream = await this.docker.pull(image);
      await new Promise<void>((resolve, reject) => {
        this.docker.modem.followProgress(stream, (error: Error | null, output: { error?: string }[] = []) => {
          const failed = error ?? output.find((entry) => entry?.error);
          if (failed) reject(failed instanceof Error ? failed : new Error(String(failed.error)));
          else resolve();
        });
      });
    } catch (error) {
      throw new HodeiError('PROVIDER_FAILED', `cannot pull image "${image}": ${messageOf(error)}`, { cause: error });
    }
  }

  /** Subscribes to the engine's container events once; resolves when subscribed, so no event is missed. */
  private followEvents(): Promise<NodeJS.ReadableStream> {
    this.events ??= (async () => {
      const since = this.lastEventSeconds || undefined;
      // Seconds resolution: replaying from one second back on a reconnect may repeat events, never lose one.
      this.lastEventSeconds = Math.max(this.lastEventSeconds, Math.floor(Date.now() / 1000) - 1);
      const stream = (await this.docker.getEvents({
        ...(since ? { since } : {}),
        filters: { type: ['container'], label: [`${MANAGED_LABEL}=true`], event: ['die', 'destroy'] },
      })) as NodeJS.ReadableStream;
      this.eventStream = stream;
      let buffer = '';
      stream.on('data', (chunk: Buffer | string) => {
        buffer += chunk.toString();
        let newline: number;
        while ((newline = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, newline).trim();
          buffer = buffer.slice(newline + 1);
          if (!line) continue;
          try {
            this.onEngineEvent(JSON.parse(line) as EngineEvent);
          } catch {
            // not JSON: ignore
          }
        }
      });
      const lost = () => {
        if (this.eventStream !== stream) return;
        this.eventStream = undefined;
        this.events = undefined;
        if (!this.closed && this.workers.size > 0) {
          // Reconnect, replaying from the last event seen, so deaths during the gap are still reported.
          setTimeout(() => void this.followEvents().catch(() => undefined), 500).unref();
        }
      };
      stream.on('end', lost);
      stream.on('close', lost);
      stream.on('error', lost);
      return stream;
    })();
    this.events.catch(() => (this.events = undefined));
    return this.events;
  }

  private onEngineEvent(event: EngineEvent): void {
    if (event.time) this.lastEventSeconds = Math.max(this.lastEventSeconds, event.time);
    const action = event.Action ?? event.status;
    if (action !== 'die' && action !== 'destroy') return;
    const attributes = event.Actor?.Attributes ?? {};
    const workerId = attributes[WORKER_ID_LABEL];
    if (!workerId) return;
    const worker = this.workers.get(workerId);
    if (!worker || worker.stopping || worker.reported) return;
    if (worker.containerId && event.Actor?.ID && event.Actor.ID !== worker.containerId) return;
    worker.reported = true;
    void this.describeExit(worker, action, attributes).then((exit) => {
      for (const listener of this.listeners) listener(exit);
    });
  }

  private async describeExit(worker: WorkerContainer, action: string, attributes: Record<string, string>): Promise<WorkerExit> {
    if (action === 'destroy') {
      return { workerId: worker.workerId, exitCode: null, signal: null, reason: 'worker container was removed outside Hodei' };
    }
    const parsed = Number(attributes.exitCode);
    let exitCode: number | null = Number.isInteger(parsed) ? parsed : null;
    let oomKilled = false;
    let detail = '';
    try {
      const state = (await this.docker.getContainer(worker.containerId ?? containerNameOf(worker.workerId)).inspect()).State;
      oomKilled = state.OOMKilled === true;
      if (exitCode === null && Number.isInteger(state.ExitCode)) exitCode = state.ExitCode;
      if (state.Error) detail = `: ${state.Error}`;
    } catch {
      // removed meanwhile: the event's exit code is all we know
    }
    const signal = exitCode !== null && exitCode > 128 && exitCode < 160 ? signalName(exitCode - 128) : null;
    const reason = oomKilled
      ? 'killed: out of memory'
      : signal
        ? `worker container killed by ${signal}${detail}`
        : `worker container exited with code ${String(exitCode)}${detail}`;
    return { workerId: worker.workerId, exitCode, signal, reason };
  }
}

const SIGNALS: Record<number, string> = { 1: 'SIGHUP', 2: 'SIGINT', 6: 'SIGABRT', 9: 'SIGKILL', 15: 'SIGTERM' };
function signalName(number: number): string {
  return SIGNALS[number] ?? `signal ${number}`;
}

/** Factory form of `new DockerProvider(options)`; validates the options (INVALID_ARGUMENT naming the field). */
export function createDockerProvider(options: DockerProviderOptions): DockerProvider {
  return new DockerProvider(options);
}
