import { invalidArgument } from './errors';
import { MIN_MASKED_SECRET_LENGTH, MASK, secretEnvNames } from '../protocol/secrets';
import type { JobSpec, JobSpecInput } from './job';

/** A job's `timeoutMs` when it gives none: one hour. */
export const DEFAULT_JOB_TIMEOUT_MS = 60 * 60 * 1000;
export const MAX_JOB_TIMEOUT_MS = 7 * 24 * 60 * 60 * 1000;
/** A job specification may take at most 1 MiB (command, script, args and env together). */
export const MAX_JOB_SPEC_BYTES = 1024 * 1024;
export const MAX_ATTEMPTS_LIMIT = 100;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringMap(value: unknown, field: string, keyPattern?: RegExp): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (!isRecord(value)) throw invalidArgument(field, 'must be an object of string values');
  const result: Record<string, string> = {};
  for (const [key, entry] of Object.entries(value)) {
    if (key === '') throw invalidArgument(field, 'keys must not be empty');
    if (keyPattern && !keyPattern.test(key)) throw invalidArgument(`${field}.${key}`, 'is not a valid variable name');
    if (typeof entry !== 'string') throw invalidArgument(`${field}.${key}`, 'must be a string');
    if (entry.includes('\0')) throw invalidArgument(`${field}.${key}`, 'must not contain NUL bytes');
    result[key] = entry;
  }
  return result;
}

function integer(value: unknown, field: string, fallback: number, min: number, max: number): number {
  if (value === undefined || value === null || value === 0) return fallback === 0 ? 0 : fallback;
  if (typeof value !== 'number' || !Number.isInteger(value)) throw invalidArgument(field, 'must be an integer');
  if (value < min || value > max) throw invalidArgument(field, `must be between ${min} and ${max}, got ${value}`);
  return value;
}

function byteLength(spec: JobSpec): number {
  let bytes = Buffer.byteLength(spec.name) + Buffer.byteLength(spec.command ?? '');
  bytes += Buffer.byteLength(spec.script?.content ?? '');
  for (const arg of spec.args) bytes += Buffer.byteLength(arg);
  for (const [key, value] of Object.entries(spec.env)) bytes += Buffer.byteLength(key) + Buffer.byteLength(value);
  return bytes;
}

/**
 * Checks a job specification at the boundary and fills in defaults.
 * Throws `INVALID_ARGUMENT` whose `field` names the offending part (e.g. `spec.timeoutMs`).
 */
export function validateJobSpec(input: unknown): JobSpec {
  if (!isRecord(input)) throw invalidArgument('spec', 'must be an object');
  const name = input.name;
  if (typeof name !== 'string' || name.trim() === '') throw invalidArgument('spec.name', 'must be a non-empty string');
  if (name.length > 256) throw invalidArgument('spec.name', 'must be at most 256 characters');

  const command = input.command;
  const script = input.script;
  const hasCommand = typeof command === 'string' && command.trim() !== '';
  const hasScript = isRecord(script);
  if (command !== undefined && command !== '' && typeof command !== 'string') {
    throw invalidArgument('spec.command', 'must be a string');
  }
  if (hasCommand && hasScript) throw invalidArgument('spec', 'give either command or script, not both');
  if (!hasCommand && !hasScript) {
    throw invalidArgument(
      typeof command === 'string' ? 'spec.command' : 'spec',
      typeof command === 'string' ? 'must not be empty' : 'needs a command or a script',
    );
  }
  if (hasCommand && command.includes('\0')) throw invalidArgument('spec.command', 'must not contain NUL bytes');

  const args = input.args ?? [];
  if (!Array.isArray(args) || args.some((arg) => typeof arg !== 'string')) {
    throw invalidArgument('spec.args', 'must be an array of strings');
  }
  if (hasScript && args.length > 0) throw invalidArgument('spec.args', 'only apply to a command, not a script');
  // They are appended to the command's last line: after a heredoc or a comment they would be swallowed silently.
  if (hasCommand && args.length > 0 && command.trimEnd().includes('\n')) {
    throw invalidArgument('spec.args', 'cannot follow a command of several lines: write them into the command');
  }

  let scriptSpec: JobSpec['script'];
  if (hasScript) {
    const interpreter = script.interpreter ?? '/bin/bash';
    if (typeof interpreter !== 'string' || interpreter.trim() === '') {
      throw invalidArgument('spec.script.interpreter', 'must be a non-empty string');
    }
    if (typeof script.content !== 'string' || script.content.trim() === '') {
      throw invalidArgument('spec.script.content', 'must be a non-empty string');
    }
    scriptSpec = { interpreter, content: script.content };
  }

  const workingDir = input.workingDir;
  if (workingDir !== undefined && workingDir !== '' && typeof workingDir !== 'string') {
    throw invalidArgument('spec.workingDir', 'must be a string');
  }
  if (typeof input.timeoutMs === 'number' && input.timeoutMs < 0) {
    throw invalidArgument('spec.timeoutMs', `must be positive, got ${input.timeoutMs}`);
  }

  const env = stringMap(input.env, 'spec.env', ENV_NAME);
  const secretEnv = input.secretEnv ?? [];
  if (!Array.isArray(secretEnv) || secretEnv.some((name) => typeof name !== 'string')) {
    throw invalidArgument('spec.secretEnv', 'must be an array of env names');
  }
  for (const name of secretEnv as string[]) {
    if (!(name in env)) throw invalidArgument(`spec.secretEnv.${name}`, 'names no entry of spec.env');
    if (env[name]!.length < MIN_MASKED_SECRET_LENGTH) {
      throw invalidArgument(`spec.secretEnv.${name}`, `a secret needs at least ${MIN_MASKED_SECRET_LENGTH} characters to be masked in logs`);
    }
  }

  const retryOnExitCodes = input.retryOnExitCodes ?? [];
  if (
    !Array.isArray(retryOnExitCodes) ||
    retryOnExitCodes.some((code) => typeof code !== 'number' || !Number.isInteger(code) || code < 1 || code > 255)
  ) {
    throw invalidArgument('spec.retryOnExitCodes', 'must be an array of exit codes between 1 and 255');
  }

  const spec: JobSpec = {
    name,
    ...(hasCommand ? { command } : {}),
    args: args as string[],
    ...(scriptSpec ? { script: scriptSpec } : {}),
    env,
    secretEnv: [...new Set(secretEnv as string[])],
    ...(typeof workingDir === 'string' && workingDir !== '' ? { workingDir } : {}),
    timeoutMs: integer(input.timeoutMs, 'spec.timeoutMs', DEFAULT_JOB_TIMEOUT_MS, 1, MAX_JOB_TIMEOUT_MS),
    labels: stringMap(input.labels, 'spec.labels'),
    maxAttempts: integer(input.maxAttempts, 'spec.maxAttempts', 1, 1, MAX_ATTEMPTS_LIMIT),
    priority: integer(input.priority, 'spec.priority', 0, -1_000_000, 1_000_000),
    ...(retryOnExitCodes.length > 0 ? { retryOnExitCodes: [...new Set(retryOnExitCodes as number[])] } : {}),
  };
  const size = byteLength(spec);
  if (size > MAX_JOB_SPEC_BYTES) {
    throw invalidArgument('spec', `is ${size} bytes; a job spec may take at most ${MAX_JOB_SPEC_BYTES} bytes`);
  }
  return spec;
}

export type { JobSpecInput };

/** The spec as clients may see it: every secret env value replaced by `***`. */
export function redactJobSpec(spec: JobSpec): JobSpec {
  const secrets = secretEnvNames(spec.env, spec.secretEnv);
  if (secrets.length === 0) return spec;
  const env = { ...spec.env };
  for (const name of secrets) env[name] = MASK;
  return { ...spec, env };
}
