import { cpus } from 'node:os';
import { createRequire } from 'node:module';
import { invalidArgument } from '@hodei/core';

/** Options of {@link ProcessProvider}; all optional. Invalid values throw `INVALID_ARGUMENT` naming the option. */
export interface ProcessProviderOptions {
  /** Provider name, used in worker records; default `process`. */
  name?: string;
  /** Most worker processes alive at once; default the number of CPUs. */
  maxWorkers?: number;
  /** Jobs one worker runs at once; default 1. */
  workerCapacity?: number;
  /** Labels every worker carries. */
  labels?: Record<string, string>;
  /** Extra environment for worker processes (and so for their jobs). */
  env?: Record<string, string>;
  /** Between SIGTERM and SIGKILL when a worker is stopped; default 5 s. */
  stopGraceMs?: number;
  /** Command that starts a worker; default `node <@hodei/worker's bin>`. */
  workerCommand?: readonly string[];
}

export interface ResolvedProcessProviderOptions {
  name: string;
  maxWorkers: number;
  workerCapacity: number;
  labels: Record<string, string>;
  env: Record<string, string>;
  stopGraceMs: number;
  workerCommand: readonly string[];
}

function positiveInteger(value: number | undefined, field: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) throw invalidArgument(field, `must be a positive integer, got ${value}`);
  return value;
}

function defaultWorkerCommand(): string[] {
  const require = createRequire(import.meta.url);
  return [process.execPath, require.resolve('@hodei/worker/cli')];
}

/** Validates options at the factory, with messages naming the option. */
export function resolveProcessProviderOptions(options: ProcessProviderOptions = {}): ResolvedProcessProviderOptions {
  if (options.workerCommand !== undefined && (!Array.isArray(options.workerCommand) || options.workerCommand.length === 0)) {
    throw invalidArgument('workerCommand', 'must be a non-empty array: the program, then its arguments');
  }
  if (options.stopGraceMs !== undefined && !(options.stopGraceMs >= 0)) {
    throw invalidArgument('stopGraceMs', 'must be zero or more milliseconds');
  }
  return {
    name: options.name ?? 'process',
    maxWorkers: positiveInteger(options.maxWorkers, 'maxWorkers', Math.max(1, cpus().length)),
    workerCapacity: positiveInteger(options.workerCapacity, 'workerCapacity', 1),
    labels: { ...options.labels },
    env: { ...options.env },
    stopGraceMs: options.stopGraceMs ?? 5_000,
    workerCommand: options.workerCommand ?? defaultWorkerCommand(),
  };
}
