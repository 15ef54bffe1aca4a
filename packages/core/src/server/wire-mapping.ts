import type { Job, JobSpec, JobState } from '../domain/job';
import { redactJobSpec } from '../domain/job-spec';
import type { Worker } from '../domain/worker';
import type { LogLine, LogLineBatch, LogStreamName } from '../ports/store';
import * as wire from '../protocol';

const STREAM_TO_WIRE: Record<LogStreamName, wire.LogStream> = {
  stdout: wire.LogStream.LOG_STREAM_STDOUT,
  stderr: wire.LogStream.LOG_STREAM_STDERR,
  system: wire.LogStream.LOG_STREAM_SYSTEM,
};

export function streamFromWire(stream: wire.LogStream): LogStreamName {
  if (stream === wire.LogStream.LOG_STREAM_STDERR) return 'stderr';
  if (stream === wire.LogStream.LOG_STREAM_SYSTEM) return 'system';
  return 'stdout';
}

/** The lines as packed batches of at most `maxTextLength` characters of text each (at least one line each). */
export function logLinesToWire(lines: readonly LogLine[], maxTextLength: number): wire.LogLines[] {
  const batches: wire.LogLines[] = [];
  const builder = new wire.LogLinesBuilder();
  let firstSeq = lines[0]?.seq ?? 1;
  for (const line of lines) {
    if (builder.count > 0 && (builder.textSize + line.text.length > maxTextLength || line.seq !== firstSeq + builder.count)) {
      batches.push(builder.build(firstSeq));
      firstSeq = line.seq;
    }
    builder.add(STREAM_TO_WIRE[line.stream], line.text, line.timestamp);
  }
  if (builder.count > 0) batches.push(builder.build(firstSeq));
  return batches;
}

/**
 * A packed wire batch as the store takes it, without unpacking its lines. Arrays that disagree in length (a
 * peer's bug) are cut to the shortest, as {@link wire.mapLogLines} does, so text is never mis-attributed.
 */
export function logLineBatchFromWire(lines: wire.LogLines | undefined): LogLineBatch {
  if (!lines) return { firstSeq: 1, text: '', textLengths: [], firstTimestamp: 0, timestampDeltas: [], streams: [] };
  const count = wire.logLineCount(lines);
  const cut = <T>(values: T[]): T[] => (values.length === count ? values : values.slice(0, count));
  const streams = count === 0 ? [] : lines.streams.length === 1 ? lines.streams : cut(lines.streams);
  return {
    firstSeq: lines.firstSeq,
    text: lines.text,
    textLengths: cut(lines.textLengths),
    ...saneTimestamps(lines.firstTimestampMs, cut(lines.timestampDeltasMs)),
    streams: streams.map(streamFromWire),
  };
}

/** The latest line time taken as given: 9999-12-31, far within what JavaScript and PostgreSQL can hold. */
const LATEST_LINE_TIME_MS = 253_402_300_799_999;

/**
 * Line times as the store can hold them: a peer's time that is not a number of ms between 1970 and the year 9999
 * (NaN, out of range: a bug, or a clock gone wrong) would fail the store's statement, and with it every other
 * batch that shares it; such a batch is dated now instead, its lines all at once.
 */
function saneTimestamps(first: number, deltas: number[]): { firstTimestamp: number; timestampDeltas: number[] } {
  let at = first;
  let sane = Number.isFinite(first) && first >= 0 && first <= LATEST_LINE_TIME_MS;
  for (let index = 0; sane && index < deltas.length; index++) {
    at += deltas[index]!;
    sane = Number.isFinite(at) && at >= 0 && at <= LATEST_LINE_TIME_MS;
  }
  return sane ? { firstTimestamp: first, timestampDeltas: deltas } : { firstTimestamp: Date.now(), timestampDeltas: deltas.map(() => 0) };
}

/** A stored batch as a wire message (the arrays are shared, not copied). */
export function logLineBatchToWire(batch: LogLineBatch): wire.LogLines {
  return {
    firstSeq: batch.firstSeq,
    text: batch.text,
    textLengths: batch.textLengths as number[],
    firstTimestampMs: batch.firstTimestamp,
    timestampDeltasMs: batch.timestampDeltas as number[],
    streams: batch.streams.map((stream) => STREAM_TO_WIRE[stream]),
  };
}

export function specToWire(spec: Partial<JobSpec> & { name: string }): wire.JobSpec {
  return {
    name: spec.name,
    command: spec.command ?? '',
    args: spec.args ?? [],
    script: spec.script ? { interpreter: spec.script.interpreter ?? '', content: spec.script.content } : undefined,
    env: spec.env ?? {},
    secretEnv: spec.secretEnv ?? [],
    workingDir: spec.workingDir ?? '',
    timeoutMs: spec.timeoutMs ?? 0,
    labels: spec.labels ?? {},
    maxAttempts: spec.maxAttempts ?? 0,
    priority: spec.priority ?? 0,
    retryOnExitCodes: spec.retryOnExitCodes ?? [],
  };
}

/** The wire spec as input for validation: empty wire defaults become "not given". */
export function specInputFromWire(spec: wire.JobSpec | undefined): unknown {
  if (!spec) return undefined;
  return {
    name: spec.name,
    ...(spec.command ? { command: spec.command } : { command: spec.script ? undefined : spec.command }),
    args: spec.args,
    ...(spec.script ? { script: { interpreter: spec.script.interpreter || undefined, content: spec.script.content } } : {}),
    env: spec.env,
    secretEnv: spec.secretEnv,
    ...(spec.workingDir ? { workingDir: spec.workingDir } : {}),
    ...(spec.timeoutMs ? { timeoutMs: spec.timeoutMs } : {}),
    labels: spec.labels,
    ...(spec.maxAttempts ? { maxAttempts: spec.maxAttempts } : {}),
    ...(spec.priority ? { priority: spec.priority } : {}),
    ...(spec.retryOnExitCodes?.length ? { retryOnExitCodes: spec.retryOnExitCodes } : {}),
  };
}

export function specFromWire(spec: wire.JobSpec | undefined): JobSpec {
  return {
    name: spec?.name ?? '',
    ...(spec?.command ? { command: spec.command } : {}),
    args: spec?.args ?? [],
    ...(spec?.script ? { script: { interpreter: spec.script.interpreter, content: spec.script.content } } : {}),
    env: spec?.env ?? {},
    secretEnv: spec?.secretEnv ?? [],
    ...(spec?.workingDir ? { workingDir: spec.workingDir } : {}),
    timeoutMs: spec?.timeoutMs ?? 0,
    labels: spec?.labels ?? {},
    maxAttempts: spec?.maxAttempts ?? 1,
    priority: spec?.priority ?? 0,
    ...(spec?.retryOnExitCodes?.length ? { retryOnExitCodes: spec.retryOnExitCodes } : {}),
  };
}

export function jobToWire(job: Job): wire.Job {
  return {
    id: job.id,
    spec: specToWire(redactJobSpec(job.spec)),
    state: job.state,
    attempt: job.attempt,
    epoch: job.epoch,
    workerId: job.workerId ?? '',
    createdAtMs: job.createdAt,
    startedAtMs: job.startedAt ?? 0,
    completedAtMs: job.completedAt ?? 0,
    exitCode: job.exitCode,
    signal: job.signal ?? '',
    errorMessage: job.errorMessage ?? '',
    failureReason: job.failureReason ?? '',
    durationMs: job.durationMs ?? 0,
  };
}

export function jobFromWire(job: wire.Job): Job {
  return {
    id: job.id,
    spec: specFromWire(job.spec),
    state: job.state as JobState,
    attempt: job.attempt,
    epoch: job.epoch,
    createdAt: job.createdAtMs,
    ...(job.workerId ? { workerId: job.workerId } : {}),
    ...(job.startedAtMs ? { startedAt: job.startedAtMs } : {}),
    ...(job.completedAtMs ? { completedAt: job.completedAtMs } : {}),
    ...(job.exitCode !== undefined ? { exitCode: job.exitCode } : {}),
    ...(job.signal ? { signal: job.signal } : {}),
    ...(job.errorMessage ? { errorMessage: job.errorMessage } : {}),
    ...(job.failureReason ? { failureReason: job.failureReason as Job['failureReason'] } : {}),
    ...(job.durationMs ? { durationMs: job.durationMs } : {}),
  };
}

export function workerToWire(worker: Worker): wire.Worker {
  return {
    id: worker.id,
    provider: worker.provider,
    state: worker.state,
    capacity: worker.capacity,
    runningJobIds: worker.runningJobIds,
    labels: worker.labels,
    createdAtMs: worker.createdAt,
    lastHeartbeatMs: worker.lastHeartbeat ?? 0,
  };
}

/** The worker as a client sees it: no credentials. */
export function workerFromWire(worker: wire.Worker): Omit<Worker, 'sessionTokenHash' | 'idleSince'> {
  return {
    id: worker.id,
    provider: worker.provider,
    state: worker.state as Worker['state'],
    capacity: worker.capacity,
    runningJobIds: worker.runningJobIds,
    labels: worker.labels,
    createdAt: worker.createdAtMs,
    ...(worker.lastHeartbeatMs ? { lastHeartbeat: worker.lastHeartbeatMs } : {}),
  };
}
