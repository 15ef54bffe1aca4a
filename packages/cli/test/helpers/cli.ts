import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cli.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Starts the built CLI as a child process; `result` settles when it exits (killed after `timeoutMs`). */
export function startCli(
  args: readonly string[],
  options: { server?: string; env?: Record<string, string | undefined>; timeoutMs?: number } = {},
): { child: ChildProcess; result: Promise<CliResult>; output: () => { stdout: string; stderr: string } } {
  const env: Record<string, string | undefined> = { ...process.env, HODEI_SERVER: options.server, ...options.env };
  if (env.HODEI_SERVER === undefined) delete env.HODEI_SERVER;
  const started = Date.now();
  const child = spawn(process.execPath, [CLI, ...args], { env: env as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const result = new Promise<CliResult>((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
  return { child, result, output: () => ({ stdout, stderr }) };
}

export function runCli(
  args: readonly string[],
  options: { server?: string; env?: Record<string, string | undefined>; timeoutMs?: number } = {},
): Promise<CliResult> {
  return startCli(args, options).result;
}

/** Whether this system exposes other processes' environments (Linux /proc); the leftover-process checks need it. */
export const CAN_SEE_PROCESSES = existsSync('/proc/self/environ');

/** Pids of live processes whose environment holds `name=value` (Linux /proc); workers and their jobs carry HODEI_SERVER_ADDRESS. */
export function pidsWithEnv(name: string, value: string): number[] {
  const needle = `${name}=${value}\0`;
  const pids: number[] = [];
  if (!CAN_SEE_PROCESSES) return pids;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, 'latin1').includes(needle)) pids.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

export async function until<T>(probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
