import { invalidArgument, parseDuration, JOB_STATES, type JobState } from '@hodei/core';

/** Server address used when neither `--server` nor `HODEI_SERVER` is given. */
export const DEFAULT_SERVER = '127.0.0.1:50051';
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Commander collector for repeatable options: keeps every raw value; validation happens later. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** `--server`, else `HODEI_SERVER`, else 127.0.0.1:50051. */
export function resolveServerAddress(flag: string | undefined, env: Record<string, string | undefined>): string {
  const fromEnv = env.HODEI_SERVER?.trim();
  const address = flag ?? (fromEnv ? fromEnv : DEFAULT_SERVER);
  const field = flag === undefined && fromEnv ? 'HODEI_SERVER' : '--server';
  if (!/^[^\s:/]+:\d{1,5}$/.test(address) || Number(address.split(':')[1]) > 65_535) {
    throw invalidArgument(field, `"${address}" is not host:port, e.g. 127.0.0.1:50051`);
  }
  return address;
}

/** A duration flag such as `--timeout 90s`; must be more than zero. */
export function parseDurationFlag(value: string, flag: string): number {
  const ms = parseDuration(value, flag);
  if (!(ms > 0)) throw invalidArgument(flag, `"${value}" must be more than zero`);
  return ms;
}

/** A whole number flag within [min, max]. */
export function parseIntegerFlag(value: string, flag: string, min: number, max: number): number {
  if (!/^-?\d+$/.test(value.trim())) throw invalidArgument(flag, `"${value}" is not a whole number`);
  const number = Number(value);
  if (number < min || number > max) throw invalidArgument(flag, `must be between ${min} and ${max}, got ${value}`);
  return number;
}

/** Repeated `K=V` flags into a record. Env names must be shell variable names. */
export function parseKeyValues(values: readonly string[] | undefined, flag: string, kind: 'env' | 'label'): Record<string, string> {
  const result: Record<string, string> = {};
  for (const entry of values ?? []) {
    const at = entry.indexOf('=');
    if (at < 0) throw invalidArgument(flag, `"${entry}" is not KEY=VALUE`);
    const key = entry.slice(0, at);
    if (key === '') throw invalidArgument(flag, `"${entry}" has an empty name`);
    if (kind === 'env' && !ENV_NAME.test(key)) {
      throw invalidArgument(flag, `"${key}" is not a valid variable name (letters, digits and _, not starting with a digit)`);
    }
    result[key] = entry.slice(at + 1);
  }
  return result;
}

/** `--state running` (any case, repeatable, or comma separated) into job states. */
export function parseStates(values: readonly string[] | undefined): JobState[] {
  const states: JobState[] = [];
  for (const value of (values ?? []).flatMap((entry) => entry.split(','))) {
    const state = value.trim().toUpperCase();
    if (!(JOB_STATES as readonly string[]).includes(state)) {
      throw invalidArgument('--state', `"${value}" is not a job state; accepted values: ${JOB_STATES.join(', ')}`);
    }
    states.push(state as JobState);
  }
  return states;
}

/** Checks a value against a closed list, naming the flag and the accepted values. */
export function parseChoice<T extends string>(value: string, flag: string, accepted: readonly T[]): T {
  if (!(accepted as readonly string[]).includes(value)) {
    throw invalidArgument(flag, `"${value}" is not supported; accepted values: ${accepted.join(', ')}`);
  }
  return value as T;
}
