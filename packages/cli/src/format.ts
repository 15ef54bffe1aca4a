import type { Job, LogLine, WorkerInfo } from '@hodei/core';
import { formatAge, formatDuration, formatTable, truncate } from './table';

/** A job as `--json` prints it: flat `id`, `name`, `state`, `exitCode` (null until known), then the rest. */
export function jobToJson(job: Job): Record<string, unknown> {
  return {
    id: job.id,
    name: job.spec.name,
    state: job.state,
    exitCode: job.exitCode ?? null,
    signal: job.signal ?? null,
    errorMessage: job.errorMessage ?? null,
    failureReason: job.failureReason ?? null,
    attempt: job.attempt,
    workerId: job.workerId ?? null,
    createdAt: new Date(job.createdAt).toISOString(),
    startedAt: job.startedAt ? new Date(job.startedAt).toISOString() : null,
    completedAt: job.completedAt ? new Date(job.completedAt).toISOString() : null,
    durationMs: job.durationMs ?? null,
    spec: job.spec,
  };
}

export function workerToJson(worker: WorkerInfo): Record<string, unknown> {
  return {
    id: worker.id,
    provider: worker.provider,
    state: worker.state,
    capacity: worker.capacity,
    runningJobIds: worker.runningJobIds,
    labels: worker.labels,
    createdAt: new Date(worker.createdAt).toISOString(),
    lastHeartbeat: worker.lastHeartbeat ? new Date(worker.lastHeartbeat).toISOString() : null,
  };
}

export function toJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** What the job runs, as one line: the command (with its arguments) or `script (<interpreter>)`. */
export function describeCommand(job: Job): string {
  if (job.spec.command !== undefined) return [job.spec.command, ...job.spec.args].join(' ');
  if (job.spec.script) return `script (${job.spec.script.interpreter})`;
  return '';
}

function jobDuration(job: Job, now: number): string {
  if (job.durationMs !== undefined) return formatDuration(job.durationMs);
  if (job.startedAt !== undefined) return formatDuration((job.completedAt ?? now) - job.startedAt);
  return '-';
}

export function jobTable(jobs: readonly Job[], now = Date.now()): string {
  if (jobs.length === 0) return 'no jobs\n';
  return formatTable(
    ['ID', 'NAME', 'STATE', 'EXIT', 'AGE', 'DURATION', 'COMMAND'],
    jobs.map((job) => [
      job.id,
      truncate(job.spec.name, 30),
      job.state,
      job.exitCode !== undefined ? String(job.exitCode) : (job.signal ?? '-'),
      formatAge(job.createdAt, now),
      jobDuration(job, now),
      truncate(describeCommand(job), 40),
    ]),
  );
}

export function workerTable(workers: readonly WorkerInfo[], now = Date.now()): string {
  if (workers.length === 0) return 'no workers\n';
  return formatTable(
    ['ID', 'PROVIDER', 'STATE', 'JOBS', 'AGE', 'HEARTBEAT'],
    workers.map((worker) => [
      worker.id,
      worker.provider,
      worker.state,
      `${worker.runningJobIds.length}/${worker.capacity}`,
      formatAge(worker.createdAt, now),
      worker.lastHeartbeat ? `${formatAge(worker.lastHeartbeat, now)} ago` : '-',
    ]),
  );
}

/** `job get` without --json: one `key: value` line per known field. */
export function jobDetails(job: Job, now = Date.now()): string {
  const time = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());
  const labels = Object.entries(job.spec.labels).map(([key, value]) => `${key}=${value}`).join(' ');
  const env = Object.keys(job.spec.env).join(' ');
  const fields: [string, string | undefined][] = [
    ['id', job.id],
    ['name', job.spec.name],
    ['state', job.state],
    ['exit code', job.exitCode?.toString()],
    ['signal', job.signal],
    ['error', job.errorMessage],
    ['failure', job.failureReason],
    ['command', job.spec.command !== undefined ? describeCommand(job) : undefined],
    ['script', job.spec.script ? `${job.spec.script.interpreter}, ${job.spec.script.content.split('\n').length} lines` : undefined],
    ['working dir', job.spec.workingDir],
    ['env', env || undefined],
    ['labels', labels || undefined],
    ['timeout', formatDuration(job.spec.timeoutMs)],
    ['attempt', `${job.attempt} of ${job.spec.maxAttempts}`],
    ['worker', job.workerId],
    ['created', time(job.createdAt)],
    ['started', time(job.startedAt)],
    ['completed', time(job.completedAt)],
    ['duration', job.startedAt !== undefined ? jobDuration(job, now) : undefined],
  ];
  const shown = fields.filter((entry): entry is [string, string] => entry[1] !== undefined && entry[1] !== '');
  const width = Math.max(...shown.map(([key]) => key.length)) + 1;
  return shown.map(([key, value]) => `${`${key}:`.padEnd(width)} ${value}\n`).join('');
}

/** Job stdout goes to stdout; job stderr and system lines (e.g. the `$ command` header) go to stderr. */
export function writeLogLine(line: Pick<LogLine, 'stream' | 'text'>, out: { write(text: string): unknown }, err: { write(text: string): unknown }): void {
  (line.stream === 'stdout' ? out : err).write(`${line.text}\n`);
}
