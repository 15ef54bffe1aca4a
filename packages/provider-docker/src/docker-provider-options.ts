import { cpus } from 'node:os';
import { invalidArgument } from '@hodei/core';
import type Dockerode from 'dockerode';

/** Whether a missing image is pulled before a worker starts. */
export type PullPolicy = 'never' | 'if-not-present';

/** Options of {@link DockerProvider}: only `image` is required. Invalid values throw `INVALID_ARGUMENT` naming the option. */
export interface DockerProviderOptions {
  /** Worker image, e.g. `hodei-worker:local`; its default command must start the worker agent. Required. */
  image: string;
  /** Provider name, used in worker records; default `docker`. */
  name?: string;
  /** Container network mode; default `host`, so workers reach the server on 127.0.0.1. */
  networkMode?: string;
  /** Memory limit per worker container: bytes, or a string such as `512m`, `1g`, `64M`. Swap is not allowed beyond it. */
  memory?: number | string;
  /** CPUs per worker container, e.g. `1` or `0.5` (sent as `NanoCpus`). */
  cpus?: number;
  /** Extra environment for worker containers (and so for their jobs). */
  env?: Record<string, string>;
  /** Bind mounts, Docker syntax: `/host/path:/container/path[:ro]`. */
  binds?: string[];
  /** Most worker containers alive at once; default the number of CPUs. */
  maxWorkers?: number;
  /** Jobs one worker runs at once; default 1. */
  workerCapacity?: number;
  /** Labels every worker carries (scheduling labels, not container labels). */
  labels?: Record<string, string>;
  /** `if-not-present` (default) pulls a missing image; `never` fails the worker with a clear error instead. */
  pullPolicy?: PullPolicy;
  /** Seconds between SIGTERM and SIGKILL when a worker container is stopped; default 5. */
  stopTimeoutSeconds?: number;
  /** Run an init process (docker-init) as PID 1 that forwards signals and reaps zombies; default true. */
  init?: boolean;
  /** The Docker client to use; default `new Dockerode()` (DOCKER_HOST or /var/run/docker.sock). */
  docker?: Dockerode;
  /** Address containers use to reach the server, when it differs from the server's own (e.g. not host networking). */
  serverAddressForContainers?: string | ((serverAddress: string) => string);
}

/** {@link DockerProviderOptions} after validation, with every default filled in. */
export interface ResolvedDockerProviderOptions {
  /** Worker image. */
  image: string;
  /** Provider name (default `docker`). */
  name: string;
  /** Container network mode (default `host`). */
  networkMode: string;
  /** Memory limit per container in bytes, or undefined for none. */
  memory: number | undefined;
  /** CPU limit per container in billionths of a CPU (`cpus × 10⁹`), or undefined for none. */
  nanoCpus: number | undefined;
  /** Extra environment for worker containers. */
  env: Record<string, string>;
  /** Bind mounts, Docker syntax. */
  binds: string[];
  /** Most worker containers alive at once. */
  maxWorkers: number;
  /** Jobs one worker runs at once. */
  workerCapacity: number;
  /** Scheduling labels every worker carries. */
  labels: Record<string, string>;
  /** Whether a missing image is pulled. */
  pullPolicy: PullPolicy;
  /** Seconds between SIGTERM and SIGKILL when a container is stopped. */
  stopTimeoutSeconds: number;
  /** Whether docker-init runs as PID 1. */
  init: boolean;
  /** Maps the server's address to the one containers use, or undefined to use it as is. */
  serverAddressForContainers: ((serverAddress: string) => string) | undefined;
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };
/** Docker refuses memory limits under 6 MiB. */
const MIN_MEMORY = 6 * 1024 ** 2;

/** `512m` → 536870912; numbers are bytes. Exported for the CLI's `--worker-memory`. */
export function parseMemory(value: number | string, field = 'memory'): number {
  let bytes: number;
  if (typeof value === 'number') {
    bytes = value;
  } else if (typeof value === 'string') {
    const match = /^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?\s*$/i.exec(value);
    if (!match) throw invalidArgument(field, `must be bytes or a size such as 512m or 1g, got "${value}"`);
    bytes = Math.floor(Number(match[1]) * UNITS[match[2]!.toLowerCase()]!);
  } else {
    throw invalidArgument(field, 'must be bytes or a size such as 512m or 1g');
  }
  if (!Number.isSafeInteger(bytes) || bytes < MIN_MEMORY) {
    throw invalidArgument(field, `must be at least 6m (Docker's minimum), got ${String(value)}`);
  }
  return bytes;
}

function positiveInteger(value: number | undefined, field: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) throw invalidArgument(field, `must be a positive integer, got ${value}`);
  return value;
}

function stringRecord(value: Record<string, string> | undefined, field: string): Record<string, string> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalidArgument(field, 'must be an object of strings');
  for (const [key, entry] of Object.entries(value)) {
    if (typeof entry !== 'string') throw invalidArgument(`${field}.${key}`, 'must be a string');
  }
  return { ...value };
}

/** Validates options at the factory, with messages naming the option. */
export function resolveDockerProviderOptions(options: DockerProviderOptions): ResolvedDockerProviderOptions {
  if (typeof options !== 'object' || options === null) throw invalidArgument('options', 'must be an object with at least `image`');
  if (typeof options.image !== 'string' || options.image.trim() === '') {
    throw invalidArgument('image', 'give the worker image, e.g. hodei-worker:local (npm run docker:image builds one)');
  }
  if (options.networkMode !== undefined && (typeof options.networkMode !== 'string' || options.networkMode === '')) {
    throw invalidArgument('networkMode', 'must be a non-empty string such as host');
  }
  if (options.cpus !== undefined && !(typeof options.cpus === 'number' && Number.isFinite(options.cpus) && options.cpus > 0)) {
    throw invalidArgument('cpus', `must be a positive number of CPUs, got ${String(options.cpus)}`);
  }
  if (options.binds !== undefined && (!Array.isArray(options.binds) || options.binds.some((bind) => typeof bind !== 'string' || !bind.includes(':')))) {
    throw invalidArgument('binds', 'must be an array of "/host/path:/container/path[:ro]" strings');
  }
  if (options.pullPolicy !== undefined && options.pullPolicy !== 'never' && options.pullPolicy !== 'if-not-present') {
    throw invalidArgument('pullPolicy', `must be "never" or "if-not-present", got "${String(options.pullPolicy)}"`);
  }
  if (options.stopTimeoutSeconds !== undefined && !(Number.isInteger(options.stopTimeoutSeconds) && options.stopTimeoutSeconds >= 0)) {
    throw invalidArgument('stopTimeoutSeconds', 'must be zero or more whole seconds');
  }
  const address = options.serverAddressForContainers;
  if (address !== undefined && typeof address !== 'function' && !(typeof address === 'string' && address.includes(':'))) {
    throw invalidArgument('serverAddressForContainers', 'must be host:port or a function of the server address');
  }
  return {
    image: options.image.trim(),
    name: options.name ?? 'docker',
    networkMode: options.networkMode ?? 'host',
    memory: options.memory === undefined ? undefined : parseMemory(options.memory),
    nanoCpus: options.cpus === undefined ? undefined : Math.round(options.cpus * 1e9),
    env: stringRecord(options.env, 'env'),
    binds: [...(options.binds ?? [])],
    maxWorkers: positiveInteger(options.maxWorkers, 'maxWorkers', Math.max(1, cpus().length)),
    workerCapacity: positiveInteger(options.workerCapacity, 'workerCapacity', 1),
    labels: stringRecord(options.labels, 'labels'),
    pullPolicy: options.pullPolicy ?? 'if-not-present',
    stopTimeoutSeconds: options.stopTimeoutSeconds ?? 5,
    init: options.init ?? true,
    serverAddressForContainers:
      address === undefined ? undefined : typeof address === 'function' ? address : () => address,
  };
}
