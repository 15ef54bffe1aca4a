import { constants } from 'node:fs';
import { access, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JobSpec } from '@hodei/core/protocol';
import { buildCommandLine } from './shell-quote';

/** Interpreter of script jobs that name none. */
export const DEFAULT_INTERPRETER = '/bin/bash';

/** The job could not be started; `message` says why, for the user. */
export class JobStartError extends Error {
  override readonly name = 'JobStartError';
}

/** How to run a job: the program, its arguments and the header lines the log starts with. */
export interface LaunchPlan {
  program: string;
  args: string[];
  header: string[];
  /** Script body to write to a file passed as the interpreter's last argument. */
  scriptContent?: string;
  /** Set when the spec cannot run at all. */
  invalid?: string;
}

/** Turns a spec into a plan, without touching the file system. */
export function planLaunch(spec: JobSpec): LaunchPlan {
  if (spec.script && !spec.command) {
    const interpreter = spec.script.interpreter.trim() || DEFAULT_INTERPRETER;
    const [program = DEFAULT_INTERPRETER, ...args] = interpreter.split(/\s+/);
    const body = spec.script.content.split('\n');
    if (body.length > 0 && body[body.length - 1] === '') body.pop();
    const header = [`$ ${interpreter} << 'EOF'`, ...body.map((line) => line.replace(/\r$/, '')), 'EOF'];
    return { program, args, header, scriptContent: spec.script.content };
  }
  const commandLine = buildCommandLine(spec.command, spec.args);
  const plan: LaunchPlan = { program: '/bin/bash', args: ['-c', commandLine], header: [`$ ${commandLine}`] };
  if (!spec.command.trim()) plan.invalid = 'the job has neither a command nor a script';
  return plan;
}

/**
 * Checks the working directory is a directory the worker may enter (spawn would otherwise blame the interpreter:
 * `/bin/bash: not found` or `permission denied`), naming what is wrong with it.
 */
export async function checkWorkingDir(dir: string): Promise<void> {
  if (!dir) return;
  let isDirectory = false;
  try {
    isDirectory = (await stat(dir)).isDirectory();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EACCES') throw new JobStartError(`working directory ${dir} cannot be reached: permission denied on a directory above it`);
    if (code === 'ENOTDIR') throw new JobStartError(`working directory ${dir} does not exist: a part of its path is not a directory`);
    throw new JobStartError(`working directory ${dir} does not exist`);
  }
  if (!isDirectory) throw new JobStartError(`working directory ${dir} is not a directory`);
  try {
    await access(dir, constants.X_OK);
  } catch {
    throw new JobStartError(`working directory ${dir} cannot be entered: permission denied`);
  }
}

/** Writes a script body to a private temporary file; returns its path and a cleanup function. */
export async function writeScript(content: string): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'hodei-job-'));
  const path = join(dir, 'script');
  await writeFile(path, content, { mode: 0o600 });
  return { path, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** The job's environment: the worker's own minus its one-time token, plus the job's, plus HODEI_JOB_ID. */
export function jobEnv(base: NodeJS.ProcessEnv, spec: JobSpec, jobId: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  delete env.HODEI_OTP_TOKEN;
  Object.assign(env, spec.env);
  env.HODEI_JOB_ID = jobId;
  return env;
}

/** A readable reason for a failed spawn. */
export function describeSpawnError(error: NodeJS.ErrnoException, program: string): string {
  if (error.code === 'ENOENT') return `${program}: not found`;
  if (error.code === 'EACCES') return `${program}: permission denied`;
  return `${program}: ${error.message}`;
}
