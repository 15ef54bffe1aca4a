import { readFileSync } from 'node:fs';

/** Output of one job sent in full by default; past it only the tail is kept. */
export const DEFAULT_MAX_JOB_BYTES = 32 * 1024 * 1024;

/** What the worker needs to run, read from its environment. */
export interface WorkerConfig {
  /** gRPC address of the server, `host:port` (an `http://` prefix is stripped). */
  serverAddress: string;
  /** One-time registration token the provider issued for this worker. */
  otpToken: string;
  /** Identifier the server knows this worker by. */
  workerId: string;
  /** Jobs this worker runs at once; default 1. */
  capacity: number;
  /** Output of one job sent in full; past it only the tail is kept. */
  maxLogBytes?: number;
  /** Labels the scheduler can match jobs against. */
  labels: Record<string, string>;
  /**
   * Connect over TLS: `ca` is the CA certificate (PEM) to trust, or undefined for the system's roots
   * (`https://` server address without HODEI_TLS_CA). Absent: plaintext.
   */
  tls?: {
    /** The CA certificate to trust (PEM), or undefined for the system's roots. */
    ca: string | undefined;
  };
}

/** The worker's environment is missing a variable or holds an invalid value. */
export class WorkerConfigError extends Error {
  /** Stable error code. */
  readonly code = 'INVALID_CONFIG' as const;
  /** The environment variable at fault. */
  readonly field: string;

  constructor(field: string, message: string) {
    super(message);
    this.name = 'WorkerConfigError';
    this.field = field;
  }
}

/** The environment the worker reads its configuration from. */
export type Env = Readonly<Record<string, string | undefined>>;

function required(env: Env, name: string, what: string): string {
  const value = env[name]?.trim();
  if (!value) {
    throw new WorkerConfigError(
      name,
      `${name} is not set: set it to ${what}. Workers are normally started by a provider, which sets it.`,
    );
  }
  return value;
}

function parseAddress(raw: string): string {
  const name = 'HODEI_SERVER_ADDRESS';
  const address = raw.replace(/^https?:\/\//i, '').replace(/\/+$/, '');
  const match = /^(\[[0-9a-fA-F:.]+\]|[^\s:/[\]]+):(\d{1,5})$/.exec(address);
  const port = match ? Number(match[2]) : 0;
  if (!match || port < 1 || port > 65535) {
    throw new WorkerConfigError(name, `${name}=${raw} is not a valid address: use host:port, e.g. 127.0.0.1:50051.`);
  }
  return address;
}

function positiveInteger(name: string, raw: string | undefined, fallback: number, meaning: string): number {
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = raw.trim();
  if (!/^\d+$/.test(value) || Number(value) < 1 || !Number.isSafeInteger(Number(value))) {
    throw new WorkerConfigError(name, `${name}=${raw} is not a positive integer: set it to ${meaning}.`);
  }
  return Number(value);
}

function parseCapacity(raw: string | undefined): number {
  return positiveInteger('HODEI_WORKER_CAPACITY', raw, 1, 'the jobs this worker may run at once (default 1)');
}

function parseLabels(raw: string | undefined): Record<string, string> {
  const name = 'HODEI_WORKER_LABELS';
  const labels: Record<string, string> = {};
  if (raw === undefined || raw.trim() === '') return labels;
  for (const part of raw.split(',')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    const key = eq < 0 ? '' : part.slice(0, eq).trim();
    if (!key) {
      throw new WorkerConfigError(name, `${name} has an invalid entry "${part}": use key=value pairs separated by commas, e.g. os=linux,arch=x64.`);
    }
    labels[key] = part.slice(eq + 1).trim();
  }
  return labels;
}

/** HODEI_TLS_CA: the PEM itself (as providers pass it) or the path of a PEM file. */
function parseTlsCa(raw: string | undefined): string | undefined {
  const name = 'HODEI_TLS_CA';
  const value = raw?.trim();
  if (!value) return undefined;
  let pem = value;
  if (!value.startsWith('-----BEGIN')) {
    try {
      pem = readFileSync(value, 'utf8');
    } catch (error) {
      throw new WorkerConfigError(name, `${name}=${value}: cannot read the CA file (${(error as Error).message}); set it to a PEM certificate or the path of one.`);
    }
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new WorkerConfigError(name, `${name} is not a PEM certificate: set it to the CA certificate (PEM) or the path of one.`);
  }
  return pem;
}

/**
 * Reads the worker's configuration from `env` (default `process.env`).
 * @throws WorkerConfigError naming the variable that is missing or invalid.
 */
export function readWorkerConfig(env: Env = process.env): WorkerConfig {
  const serverAddress = parseAddress(required(env, 'HODEI_SERVER_ADDRESS', 'the server gRPC address (host:port)'));
  const otpToken = required(env, 'HODEI_OTP_TOKEN', 'the one-time registration token issued by the server');
  const workerId = required(env, 'HODEI_WORKER_ID', 'the worker id the token was issued for');
  const ca = parseTlsCa(env.HODEI_TLS_CA);
  const tls = ca !== undefined || /^https:\/\//i.test(env.HODEI_SERVER_ADDRESS?.trim() ?? '');
  return {
    serverAddress,
    otpToken,
    workerId,
    capacity: parseCapacity(env.HODEI_WORKER_CAPACITY),
    labels: parseLabels(env.HODEI_WORKER_LABELS),
    maxLogBytes: positiveInteger(
      'HODEI_MAX_LOG_BYTES',
      env.HODEI_MAX_LOG_BYTES,
      DEFAULT_MAX_JOB_BYTES,
      'the characters of output a job may send before only its tail is kept (default 32 MiB)',
    ),
    ...(tls ? { tls: { ca } } : {}),
  };
}
