import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { invalidArgument, validateJobSpec, type JobSpecInput } from '@hodei/core';
import type { Command } from 'commander';
import { collect, parseDurationFlag, parseIntegerFlag, parseKeyValues } from './options';

/** Raw values of the flags `job queue` and `job run` share. */
export interface JobSpecFlags {
  /** `--name`: job name; default the first 40 characters of the command, or the script's file name. */
  name?: string;
  /** `--command`: shell command run with `/bin/bash -c`. */
  command?: string;
  /** `--script`: path of a script file, read by the CLI and sent as the job's script. */
  script?: string;
  /** `--interpreter`: program that runs `--script`; default `/bin/bash`. */
  interpreter?: string;
  /** `--env KEY=VALUE`, repeatable. */
  env?: string[];
  /** `--secret KEY=VALUE`, repeatable: like `--env`, but masked as `***` in logs and never shown. */
  secret?: string[];
  /** `--label KEY=VALUE`, repeatable: run only on workers carrying every such label. */
  label?: string[];
  /** `--timeout`: a duration such as `500ms`, `90s`, `5m`, `1h`; default 1h. */
  timeout?: string;
  /** `--workdir`: working directory of the job on the worker. */
  workdir?: string;
  /** `--max-attempts`: how many times the job may run in total; default 1. */
  maxAttempts?: string;
  /** `--priority`: an integer, higher runs first; default 0. */
  priority?: string;
}

/** Adds the job spec flags and the `[command...]` operands (after `--`). */
export function addJobSpecOptions(command: Command): Command {
  return command
    .argument('[command...]', 'shell command to run, after "--" (one quoted string, or a program and its arguments)')
    .option('--name <name>', 'job name (default: the first 40 characters of the command)')
    .option('--command <cmd>', 'shell command to run with /bin/bash -c')
    .option('--script <file>', 'run this script file instead of a command')
    .option('--interpreter <program>', 'interpreter for --script (default: /bin/bash)')
    .option('--env <KEY=VALUE>', 'environment variable for the job (repeatable)', collect)
    .option('--secret <KEY=VALUE>', 'secret environment variable: masked as *** in logs, never shown (repeatable)', collect)
    .option('--timeout <duration>', 'kill the job after this long: 500ms, 90s, 5m, 1h (default: 1h)')
    .option('--workdir <dir>', 'working directory of the job on the worker')
    .option('--max-attempts <n>', 'run again on another worker if its worker is lost, up to n times (default: 1)')
    .option('--label <KEY=VALUE>', 'run only on workers carrying this label (repeatable)', collect)
    .option('--priority <n>', 'higher runs first (default: 0)');
}

/** Turns the flags and operands into a validated spec; errors name the flag. */
export function buildJobSpec(flags: JobSpecFlags, operands: readonly string[]): JobSpecInput {
  const spec: JobSpecInput = { name: '' };
  const sources = [flags.command !== undefined, flags.script !== undefined, operands.length > 0].filter(Boolean).length;
  if (sources === 0) throw invalidArgument('--command', 'give a command: --command CMD, --script FILE, or -- "CMD"');
  if (sources > 1) throw invalidArgument('--command', 'give only one of --command, --script, or a command after --');
  if (flags.interpreter !== undefined && flags.script === undefined) {
    throw invalidArgument('--interpreter', 'only applies with --script');
  }
  let defaultName: string;
  if (flags.script !== undefined) {
    let content: string;
    try {
      content = readFileSync(flags.script, 'utf8');
    } catch (error) {
      throw invalidArgument('--script', `cannot read "${flags.script}": ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    if (content.trim() === '') throw invalidArgument('--script', `"${flags.script}" is empty`);
    spec.script = { content, ...(flags.interpreter !== undefined ? { interpreter: flags.interpreter } : {}) };
    defaultName = basename(flags.script);
  } else {
    const [command = '', ...args] = flags.command !== undefined ? [flags.command] : operands;
    if (command.trim() === '') throw invalidArgument('--command', 'must not be empty');
    spec.command = command;
    if (args.length > 0) spec.args = args;
    defaultName = [command, ...args].join(' ');
  }
  if (flags.name !== undefined && flags.name.trim() === '') throw invalidArgument('--name', 'must not be empty');
  spec.name = flags.name ?? defaultName.trim().replace(/\s+/g, ' ').slice(0, 40);
  if (flags.env?.length) spec.env = parseKeyValues(flags.env, '--env', 'env');
  if (flags.secret?.length) {
    const secrets = parseKeyValues(flags.secret, '--secret', 'env');
    spec.env = { ...spec.env, ...secrets };
    spec.secretEnv = Object.keys(secrets);
  }
  if (flags.label?.length) spec.labels = parseKeyValues(flags.label, '--label', 'label');
  if (flags.timeout !== undefined) spec.timeoutMs = parseDurationFlag(flags.timeout, '--timeout');
  if (flags.workdir !== undefined) {
    if (flags.workdir.trim() === '') throw invalidArgument('--workdir', 'must not be empty');
    spec.workingDir = flags.workdir;
  }
  if (flags.maxAttempts !== undefined) spec.maxAttempts = parseIntegerFlag(flags.maxAttempts, '--max-attempts', 1, 100);
  if (flags.priority !== undefined) spec.priority = parseIntegerFlag(flags.priority, '--priority', -1_000_000, 1_000_000);
  validateJobSpec(spec);
  return spec;
}
