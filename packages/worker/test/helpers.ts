import { readFileSync } from 'node:fs';
import { unpackLogLines, type JobSpec, type LogEntry, type LogStream } from '@hodei/core/protocol';
import { runJob, type JobExecution, type JobExecutionOptions, type JobResult } from '../src/job-execution';

/** A JobSpec with defaults, for tests. */
export function spec(fields: Partial<JobSpec>): JobSpec {
  const defaults: JobSpec = {
    name: 'test',
    command: '',
    args: [],
    script: undefined,
    env: {},
    secretEnv: [],
    retryOnExitCodes: [],
    workingDir: '',
    timeoutMs: 0,
    labels: {},
    maxAttempts: 0,
    priority: 0,
  };
  return { ...defaults, ...fields };
}

export interface CollectedJob {
  execution: JobExecution;
  entries: LogEntry[];
  batches: number;
  done: Promise<JobResult>;
}

/** Runs a job with an in-memory sink. */
export function startCollected(jobSpec: JobSpec, options: Partial<JobExecutionOptions> = {}): CollectedJob {
  const entries: LogEntry[] = [];
  let batches = 0;
  const collected = { entries, batches } as CollectedJob;
  const execution = runJob({
    jobId: 'job-1',
    spec: jobSpec,
    sink: (batch) => {
      entries.push(...unpackLogLines(batch));
      collected.batches = ++batches;
      return true;
    },
    killGraceMs: 500,
    ...options,
  });
  collected.execution = execution;
  collected.done = execution.done;
  return collected;
}

export function texts(entries: readonly LogEntry[], stream: LogStream): string[] {
  return entries.filter((entry) => entry.stream === stream).map((entry) => entry.text);
}

/** Whether a process exists and is not a zombie waiting for a reaper. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Polls until `predicate` holds or `timeoutMs` passes. */
export async function waitFor(predicate: () => boolean, timeoutMs = 5_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Waits (bounded) for pids to be gone; returns those still alive. */
export async function survivors(pids: readonly number[], timeoutMs = 1_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let alive = pids.filter(isAlive);
  while (alive.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    alive = alive.filter(isAlive);
  }
  return alive;
}
