import { JobOutcome, LogStream, unpackLogLines, type JobSpec } from '@hodei/core/protocol';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startWorker, type StartWorkerOptions, type WorkerHandle } from '../src/agent';
import type { WorkerConfig } from '../src/config';
import { acceptRegistration, FakeServer, type FakeConnection } from './fake-server';
import { spec, survivors, waitFor } from './helpers';

const servers: FakeServer[] = [];
const workers: WorkerHandle[] = [];
const logLines: string[] = [];

afterEach(async () => {
  for (const worker of workers.splice(0)) await worker.stop({ cancelJobs: true }).catch(() => undefined);
  for (const server of servers.splice(0)) await server.stop();
  logLines.length = 0;
});

async function setup(
  onRegister?: ConstructorParameters<typeof FakeServer>[0],
  config: Partial<WorkerConfig> = {},
  options: StartWorkerOptions = {},
) {
  const server = await new FakeServer(onRegister).start();
  servers.push(server);
  const next = server.nextConnection();
  const worker = startWorker(
    { serverAddress: server.address, otpToken: 'otp-123', workerId: 'worker-1', capacity: 1, labels: { os: 'linux' }, ...config },
    { killGraceMs: 300, pipeGraceMs: 200, log: (line) => logLines.push(line), ...options },
  );
  workers.push(worker);
  return { server, worker, connection: await next };
}

function runJob(connection: FakeConnection, jobId: string, jobSpec: JobSpec, epoch = 7, firstLogSeq = 1): void {
  connection.send({ $case: 'runJob', value: { jobId, epoch, attempt: 1, spec: jobSpec, firstLogSeq, acks: [] } });
}

function finished(connection: FakeConnection, jobId: string) {
  return connection.all('jobFinished').find((message) => message.jobId === jobId);
}

function jobPids(connection: FakeConnection, jobId: string): number[] {
  return connection.logs(jobId).filter((entry) => entry.stream === LogStream.LOG_STREAM_STDOUT && /^\d+$/.test(entry.text)).map((entry) => Number(entry.text));
}

describe('worker agent', () => {
  it('registers, runs a job, streams its logs in order, reports the result, heartbeats and drains', async () => {
    const { worker, connection } = await setup();
    expect(connection.messages[0]?.payload).toEqual({
      $case: 'register',
      value: { workerId: 'worker-1', otp: 'otp-123', sessionToken: '', capacity: 1, labels: { os: 'linux' }, version: '0.1.0', readsRunJobAcks: true, holdsPrefetchedJobs: true, ignoresRepeatedRuns: true },
    });
    runJob(connection, 'job-a', spec({ command: 'echo hello; echo oops >&2; echo "token=${HODEI_OTP_TOKEN-unset}"; exit 4' }));
    await connection.until(() => finished(connection, 'job-a') !== undefined, 10_000, 'JobFinished');

    const kinds = connection.messages.map((message) => message.payload?.$case).filter((kind) => kind !== 'heartbeat');
    expect(kinds[0]).toBe('register');
    expect(kinds.at(-1)).toBe('jobFinished');
    expect(kinds.slice(1, -1).every((kind) => kind === 'logBatch')).toBe(true);

    // The start rides on a report (no message of its own), once: the first log batch, or the result when the
    // job ended before any batch went out.
    const starts = connection.starts('job-a');
    expect(starts.length + (finished(connection, 'job-a')?.started ? 1 : 0)).toBe(1);
    for (const start of starts) expect(start.pid).toBeGreaterThan(0);
    const batches = connection.all('logBatch');
    expect(batches.every((batch) => batch.jobId === 'job-a' && batch.epoch === 7)).toBe(true);
    const entries = connection.logs('job-a');
    expect(entries.map((entry) => entry.seq)).toEqual(entries.map((_, i) => i + 1));
    expect(entries[0]).toMatchObject({ stream: LogStream.LOG_STREAM_SYSTEM, text: '$ echo hello; echo oops >&2; echo "token=${HODEI_OTP_TOKEN-unset}"; exit 4' });
    expect(entries).toHaveLength(4);
    expect(entries.slice(1).filter((e) => e.stream === LogStream.LOG_STREAM_STDOUT).map((e) => e.text)).toEqual(['hello', 'token=unset']);
    expect(entries.slice(1).filter((e) => e.stream === LogStream.LOG_STREAM_STDERR).map((e) => e.text)).toEqual(['oops']);
    expect(finished(connection, 'job-a')).toMatchObject({ jobId: 'job-a', epoch: 7, outcome: JobOutcome.JOB_OUTCOME_EXITED, exitCode: 4, signal: '' });

    await connection.until(() => connection.all('heartbeat').length >= 2, 2_000, 'heartbeats');
    expect(connection.all('heartbeat').at(-1)).toEqual({ runningJobIds: [] });

    connection.send({ $case: 'drain', value: {} });
    expect(await worker.done).toBe(0);
    expect(connection.ended).toBe(true);
  });

  it('reports the running job in heartbeats, and cancels it on CancelJob', async () => {
    const { connection } = await setup();
    runJob(connection, 'job-c', spec({ command: 'sleep 1000 & echo $!; wait' }));
    await connection.until(() => jobPids(connection, 'job-c').length === 1, 5_000, 'the pid');
    await connection.until(() => connection.all('heartbeat').some((h) => h.runningJobIds.includes('job-c')), 2_000, 'a busy heartbeat');
    connection.send({ $case: 'cancelJob', value: { jobId: 'job-c', graceMs: 100 } });
    await connection.until(() => finished(connection, 'job-c') !== undefined, 5_000, 'JobFinished');
    expect(finished(connection, 'job-c')?.outcome).toBe(JobOutcome.JOB_OUTCOME_CANCELLED);
    expect(await survivors(jobPids(connection, 'job-c'))).toEqual([]);
  });

  it('exits 3 when the registration is refused', async () => {
    const { worker } = await setup((connection) => {
      connection.send({ $case: 'refused', value: { code: 'UNAUTHENTICATED', message: 'the token expired' } });
      connection.call.end();
    });
    expect(await worker.done).toBe(3);
    expect(logLines.join('\n')).toContain('the token expired');
  });

  it('drain waits for the running job, refuses new ones, then exits 0', async () => {
    const { worker, connection } = await setup();
    runJob(connection, 'job-d', spec({ command: 'sleep 0.3; echo finished' }));
    await connection.until(() => connection.starts('job-d').length === 1, 5_000, 'the start');
    connection.send({ $case: 'drain', value: {} });
    runJob(connection, 'job-late', spec({ command: 'echo should not run' }));
    expect(await worker.done).toBe(0);
    expect(finished(connection, 'job-d')).toMatchObject({ outcome: JobOutcome.JOB_OUTCOME_EXITED, exitCode: 0 });
    expect(connection.logs('job-d').map((entry) => entry.text)).toContain('finished');
    expect(finished(connection, 'job-late')?.outcome).toBe(JobOutcome.JOB_OUTCOME_FAILED_TO_START);
  });

  it('refuses a job beyond its capacity (FAILED_TO_START: a server that granted no prefetch does not know RETURNED)', async () => {
    const { connection } = await setup();
    runJob(connection, 'job-1', spec({ command: 'sleep 1000' }));
    runJob(connection, 'job-2', spec({ command: 'echo no' }));
    await connection.until(() => finished(connection, 'job-2') !== undefined, 5_000, 'the refusal');
    expect(finished(connection, 'job-2')).toMatchObject({ outcome: JobOutcome.JOB_OUTCOME_FAILED_TO_START });
    expect(finished(connection, 'job-2')?.errorMessage).toContain('capacity');
  });

  it('kills its job and exits 1 when the server breaks the stream and it cannot reconnect in time', async () => {
    const { server, worker, connection } = await setup(undefined, {}, { reconnectTimeoutMs: 500 });
    runJob(connection, 'job-b', spec({ command: "trap '' TERM; sleep 1000 & echo $!; sleep 1000 & echo $!; wait" }));
    await connection.until(() => jobPids(connection, 'job-b').length === 2, 5_000, 'the pids');
    const pid = connection.starts('job-b')[0]!.pid;
    server.crash();
    expect(await worker.done).toBe(1);
    expect(await survivors([pid, ...jobPids(connection, 'job-b')])).toEqual([]);
    expect(logLines.join('\n')).toMatch(/reconnecting in 100 ms/);
    expect(logLines.join('\n')).toMatch(/could not reconnect in time; killing 1 running job/);
  });

  it('reconnects with its session token when the server ends the stream, keeps its job and lands its output and result', async () => {
    const { server, connection } = await setup();
    runJob(connection, 'job-e', spec({ command: 'echo one; sleep 0.6; echo two' }));
    await connection.until(() => connection.logs('job-e').some((entry) => entry.text === 'one'), 5_000, 'the first line');
    const next = server.nextConnection();
    connection.call.end();
    const again = await next;
    expect(again.all('register')[0]).toMatchObject({ workerId: 'worker-1', otp: '', sessionToken: 'session-1' });
    await again.until(() => finished(again, 'job-e') !== undefined, 5_000, 'JobFinished on the new stream');
    expect(finished(again, 'job-e')).toMatchObject({ epoch: 7, exitCode: 0, outcome: JobOutcome.JOB_OUTCOME_EXITED });
    const texts = [...connection.logs('job-e'), ...again.logs('job-e')].map((entry) => entry.text);
    expect(texts).toContain('two');
  });

  it('kills its job and exits 3 when its reconnection is refused (the server moved on without it)', async () => {
    let registrations = 0;
    const { worker, connection } = await setup((conn) => {
      registrations += 1;
      if (registrations === 1) conn.send({ $case: 'registered', value: { sessionToken: 'session-1', heartbeatIntervalMs: 50, readsJobFinishedLines: false, prefetch: 0, takesReturnedJobs: false } });
      else conn.send({ $case: 'refused', value: { code: 'UNAUTHENTICATED', message: 'worker was lost' } });
    });
    runJob(connection, 'job-r', spec({ command: 'sleep 1000 & echo $!; wait' }));
    await connection.until(() => jobPids(connection, 'job-r').length === 1, 5_000, 'the pid');
    connection.call.end();
    expect(await worker.done).toBe(3);
    expect(await survivors(jobPids(connection, 'job-r'))).toEqual([]);
  });

  it('tries again a reconnection refused for a failure on the server side (UNAVAILABLE), keeping its job, and lands the result', async () => {
    let registrations = 0;
    const { server, connection } = await setup((conn) => {
      registrations += 1;
      // The second registration meets the server's store unreachable; the third goes through.
      if (registrations === 2) conn.send({ $case: 'refused', value: { code: 'UNAVAILABLE', message: 'postgres store: updateWorker failed' } });
      else acceptRegistration()(conn);
    });
    runJob(connection, 'job-t', spec({ command: 'echo started; sleep 0.6; echo done' }));
    await connection.until(() => connection.logs('job-t').some((entry) => entry.text === 'started'), 5_000, 'the start');
    const refused = server.nextConnection();
    connection.call.end();
    await refused;
    const third = await server.nextConnection();
    await third.until(() => finished(third, 'job-t') !== undefined, 10_000, 'the result on the third stream');
    expect(finished(third, 'job-t')).toMatchObject({ outcome: JobOutcome.JOB_OUTCOME_EXITED, exitCode: 0 });
    expect(registrations).toBe(3);
  });

  it('reports the start of a silent job on its own (with its header line) and numbers lines from firstLogSeq', async () => {
    const { connection } = await setup();
    runJob(connection, 'job-s', spec({ command: 'sleep 0.5; echo late' }), 7, 12);
    await connection.until(() => connection.starts('job-s').length === 1, 5_000, 'the start');
    // Sent 5 ms after the spawn, it says so (the server records the start that much earlier), with the header.
    const start = connection.starts('job-s')[0]!;
    expect(start.startedAgoMs).toBeGreaterThanOrEqual(4);
    expect(unpackLogLines(start.lines!).map((entry) => entry.text)).toEqual(['$ sleep 0.5; echo late']);
    await connection.until(() => finished(connection, 'job-s') !== undefined, 5_000, 'JobFinished');
    const entries = connection.logs('job-s');
    expect(entries.map((entry) => entry.seq)).toEqual([12, 13]);
    expect(entries.map((entry) => entry.text)).toEqual(['$ sleep 0.5; echo late', 'late']);
    expect(finished(connection, 'job-s')).toMatchObject({ lastLogSeq: 13, started: false });
  });

  it('sends a run\'s last lines with its result to a server that reads them, and in a LogBatch before it to one that does not', async () => {
    // Output waits for its batch (long flush delay): the last line is still pending when the job ends.
    const batching = { flushDelayMs: 60_000 };
    const current = await setup(acceptRegistration(50, true), {}, { batching });
    runJob(current.connection, 'job-l', spec({ command: 'sleep 0.2; echo done' }));
    await current.connection.until(() => finished(current.connection, 'job-l') !== undefined, 10_000, 'JobFinished');
    const result = finished(current.connection, 'job-l')!;
    expect(unpackLogLines(result.lines).map((entry) => entry.text)).toEqual(['done']);
    expect(result).toMatchObject({ lastLogSeq: 2, outcome: JobOutcome.JOB_OUTCOME_EXITED, exitCode: 0 });
    expect(current.connection.logs('job-l').map((entry) => `${entry.seq}:${entry.text}`)).toEqual(['1:$ sleep 0.2; echo done', '2:done']);

    const older = await setup(acceptRegistration(50, false), { workerId: 'worker-2' }, { batching });
    runJob(older.connection, 'job-o', spec({ command: 'sleep 0.2; echo done' }));
    await older.connection.until(() => finished(older.connection, 'job-o') !== undefined, 10_000, 'JobFinished');
    expect(finished(older.connection, 'job-o')).toMatchObject({ lastLogSeq: 2, lines: undefined });
    const reports = older.connection.messages.map((message) => message.payload?.$case).filter((kind) => kind === 'logBatch' || kind === 'jobFinished');
    expect(reports.slice(-2)).toEqual(['logBatch', 'jobFinished']);
    expect(older.connection.logs('job-o').map((entry) => `${entry.seq}:${entry.text}`)).toEqual(['1:$ sleep 0.2; echo done', '2:done']);
  });

  it('forgets a result acknowledged on its next RunJob: a drained worker then closes', async () => {
    const { worker, connection } = await setup();
    connection.autoAck = false;
    runJob(connection, 'job-1', spec({ command: 'true' }));
    await connection.until(() => finished(connection, 'job-1') !== undefined, 10_000, 'JobFinished 1');
    connection.send({ $case: 'runJob', value: { jobId: 'job-2', epoch: 7, attempt: 1, spec: spec({ command: 'true' }), firstLogSeq: 1, acks: [{ jobId: 'job-1', epoch: 7, logSeq: finished(connection, 'job-1')!.lastLogSeq, finished: true }] } });
    await connection.until(() => finished(connection, 'job-2') !== undefined, 10_000, 'JobFinished 2');
    connection.send({ $case: 'drain', value: {} });
    // Only job-2's result is left unacknowledged: once its ack comes the worker closes its stream and exits.
    for (const message of connection.messages) if (message.payload?.$case === 'jobFinished' && message.payload.value.jobId === 'job-2') connection.ack(message);
    expect(await worker.done).toBe(0);
    expect(connection.all('jobFinished').filter((result) => result.jobId === 'job-1')).toHaveLength(1);
  });

  it('runs a RunJob sent again after a reconnection once: not a run it finished nor one it runs, but a new epoch of the job', async () => {
    const { server, connection } = await setup(undefined, { capacity: 2 });
    runJob(connection, 'job-done', spec({ command: 'echo ran' }));
    await connection.until(() => finished(connection, 'job-done') !== undefined, 10_000, 'JobFinished');
    runJob(connection, 'job-long', spec({ command: 'echo started; sleep 0.5' }));
    await connection.until(() => connection.logs('job-long').some((entry) => entry.text === 'started'), 5_000, 'the long job started');
    const next = server.nextConnection();
    connection.call.end();
    const again = await next;
    // The server sends its assigned jobs again: one the worker finished, one it runs.
    runJob(again, 'job-done', spec({ command: 'echo ran' }));
    runJob(again, 'job-long', spec({ command: 'echo started; sleep 0.5' }));
    await again.until(() => finished(again, 'job-long') !== undefined, 10_000, 'JobFinished of the long job');
    await new Promise((resolve) => setTimeout(resolve, 300));
    const ranLines = (conn: FakeConnection, jobId: string, text: string) => conn.logs(jobId).filter((entry) => entry.text === text).length;
    expect(ranLines(connection, 'job-done', 'ran') + ranLines(again, 'job-done', 'ran')).toBe(1);
    expect(ranLines(connection, 'job-long', 'started') + ranLines(again, 'job-long', 'started')).toBe(1);
    expect(again.all('jobFinished').filter((result) => result.jobId === 'job-done')).toHaveLength(0);
    // A later lease of the job (it went back to the queue and was assigned here again) runs.
    runJob(again, 'job-done', spec({ command: 'echo ran' }), 8);
    await again.until(() => again.all('jobFinished').some((result) => result.jobId === 'job-done' && result.epoch === 8), 10_000, 'JobFinished of epoch 8');
  });

  it('keeps unacknowledged batches and its result, and sends them again after a reconnection', async () => {
    const { server, connection } = await setup();
    connection.autoAck = false;
    runJob(connection, 'job-u', spec({ command: 'seq 1 5000' }));
    await connection.until(() => finished(connection, 'job-u') !== undefined, 10_000, 'JobFinished');
    const next = server.nextConnection();
    connection.call.end();
    const again = await next;
    await again.until(() => finished(again, 'job-u') !== undefined, 5_000, 'JobFinished resent');
    // The new stream carries everything the first did, in the same order: nothing was acknowledged.
    expect(again.logs('job-u')).toEqual(connection.logs('job-u'));
    expect(again.logs('job-u').filter((entry) => entry.stream === LogStream.LOG_STREAM_STDOUT)).toHaveLength(5_000);
    // Once acknowledged, nothing is sent again on the next reconnection.
    const third = server.nextConnection();
    again.call.end();
    const last = await third;
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(last.all('logBatch')).toEqual([]);
    expect(last.all('jobFinished')).toEqual([]);
  });

  it('when no ack comes, resends only each run\'s oldest unacknowledged report, and the rest one by one as acks arrive', async () => {
    const { connection } = await setup(undefined, {}, { ackTimeoutMs: 100 });
    connection.autoAck = false;
    runJob(connection, 'job-n', spec({ command: 'seq 1 30000' }));
    await connection.until(() => finished(connection, 'job-n') !== undefined, 10_000, 'JobFinished');
    const batches = () => connection.all('logBatch').filter((batch) => batch.jobId === 'job-n');
    const copies = (firstSeq: number) => batches().filter((batch) => batch.lines!.firstSeq === firstSeq).length;
    const firstSeqs = [...new Set(batches().map((batch) => batch.lines!.firstSeq))];
    expect(firstSeqs.length).toBeGreaterThan(1);
    // The server stays silent for several ack timeouts: only the oldest batch is sent again, each time.
    await connection.until(() => copies(firstSeqs[0]!) >= 4, 10_000, 'the oldest batch resent 3 times');
    expect(logLines.join('\n')).toMatch(/no acknowledgement for 100 ms; resending the oldest unacknowledged report of 1 run/);
    for (const firstSeq of firstSeqs.slice(1)) expect(copies(firstSeq)).toBe(1);
    expect(connection.all('jobFinished')).toHaveLength(1);
    // The server recovers: acking the oldest brings the next, and so on up to the result.
    connection.autoAck = true;
    connection.ack(connection.messages.find((message) => message.payload?.$case === 'logBatch' && message.payload.value.jobId === 'job-n')!);
    await connection.until(() => connection.all('jobFinished').length >= 2, 10_000, 'the result sent again after its lines');
    for (const firstSeq of firstSeqs.slice(1)) expect(copies(firstSeq)).toBe(2);
    // Everything acknowledged: nothing more is sent.
    const sent = connection.messages.length;
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(connection.messages.slice(sent).filter((message) => message.payload?.$case !== 'heartbeat')).toEqual([]);
  });

  it('pauses a job whose unacknowledged output exceeds maxUnackedBytes, and goes on as acks come', async () => {
    const { connection } = await setup(undefined, {}, { maxUnackedBytes: 20_000 });
    connection.autoAck = false;
    runJob(connection, 'job-p', spec({ command: 'seq 1 200000' }));
    await connection.until(() => connection.all('logBatch').length > 0, 5_000, 'a batch');
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Paused: at most about one pipe read past the bound, far from the 1.3 MB the job writes.
    const whilePaused = connection.logs('job-p').length;
    expect(whilePaused).toBeLessThan(50_000);
    expect(finished(connection, 'job-p')).toBeUndefined();
    connection.autoAck = true;
    for (const message of connection.messages) connection.ack(message);
    await connection.until(() => finished(connection, 'job-p') !== undefined, 20_000, 'JobFinished');
    const out = connection.logs('job-p').filter((entry) => entry.stream === LogStream.LOG_STREAM_STDOUT);
    expect(out).toHaveLength(200_000);
  });

  it('streams 100,000 lines through gRPC complete and in order', async () => {
    const { connection } = await setup();
    runJob(connection, 'job-big', spec({ command: 'seq 1 100000' }));
    await connection.until(() => finished(connection, 'job-big') !== undefined, 20_000, 'JobFinished');
    const entries = connection.logs('job-big');
    expect(entries.map((entry) => entry.seq)).toEqual(entries.map((_, i) => i + 1));
    const out = entries.filter((entry) => entry.stream === LogStream.LOG_STREAM_STDOUT).map((entry) => entry.text);
    expect(out).toHaveLength(100_000);
    expect(out.every((text, i) => text === String(i + 1))).toBe(true);
  });
});

describe('worker agent with prefetch (jobs held beyond its capacity)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'hodei-prefetch-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** A job that runs until the file `gate` (in the test's directory) exists. */
  const gated = (gate: string) => spec({ command: `while [ ! -e ${join(dir, gate)} ]; do sleep 0.02; done` });
  const open = (gate: string) => writeFileSync(join(dir, gate), '');
  /** Index of the first message (log batch or result) about `jobId` in the stream, -1 if none. */
  const firstReport = (connection: FakeConnection, jobId: string) =>
    connection.messages.findIndex((message) => {
      const payload = message.payload;
      return (payload?.$case === 'logBatch' || payload?.$case === 'jobFinished') && payload.value.jobId === jobId;
    });
  const finishedAt = (connection: FakeConnection, jobId: string) =>
    connection.messages.findIndex((message) => message.payload?.$case === 'jobFinished' && message.payload.value.jobId === jobId);

  it('says it holds jobs, keeps up to capacity + prefetch, starts waiting ones in order as its slot frees', async () => {
    const { connection } = await setup(acceptRegistration(50, true, 3));
    expect(connection.all('register')[0]?.holdsPrefetchedJobs).toBe(true);
    runJob(connection, 'job-1', gated('gate'));
    for (const id of ['job-2', 'job-3', 'job-4']) runJob(connection, id, spec({ command: `echo ${id}` }));
    runJob(connection, 'job-3', spec({ command: 'echo duplicate' })); // a duplicate delivery of a waiting job
    await connection.until(() => firstReport(connection, 'job-1') >= 0, 5_000, 'the first start');
    // Waiting: not started, nothing reported.
    for (const id of ['job-2', 'job-3', 'job-4']) expect(firstReport(connection, id)).toBe(-1);
    open('gate');
    await connection.until(() => finished(connection, 'job-4') !== undefined, 10_000, 'the last job');
    for (const id of ['job-1', 'job-2', 'job-3', 'job-4']) expect(finished(connection, id)).toMatchObject({ outcome: JobOutcome.JOB_OUTCOME_EXITED, exitCode: 0 });
    // One at a time, in the order they came: each starts after the one before it ended.
    for (const [before, after] of [['job-1', 'job-2'], ['job-2', 'job-3'], ['job-3', 'job-4']] as const) {
      expect(firstReport(connection, after)).toBeGreaterThan(finishedAt(connection, before));
    }
    expect(connection.logs('job-3').map((entry) => entry.text)).toContain('job-3');
    expect(connection.all('jobFinished').filter((result) => result.jobId === 'job-3')).toHaveLength(1);
  });

  it('gives back a job beyond what it holds (RETURNED, not failed) and drains itself, with no Drain from the server: gives back its waiting jobs, finishes the running one and exits 0', async () => {
    // The server's record counted fewer jobs than the worker holds; its Drain may be lost with a broken stream,
    // so the worker does not wait for it.
    const { worker, connection } = await setup(acceptRegistration(50, true, 2));
    runJob(connection, 'job-1', gated('gate'));
    runJob(connection, 'job-2', spec({ command: 'echo two' }));
    runJob(connection, 'job-3', spec({ command: 'echo three' }));
    runJob(connection, 'job-4', spec({ command: 'echo too many' }));
    await connection.until(() => finished(connection, 'job-3') !== undefined, 5_000, 'the returns');
    expect(finished(connection, 'job-4')).toMatchObject({ outcome: JobOutcome.JOB_OUTCOME_RETURNED, started: false });
    expect(finished(connection, 'job-4')?.errorMessage).toContain('capacity');
    for (const id of ['job-2', 'job-3']) expect(finished(connection, id)).toMatchObject({ outcome: JobOutcome.JOB_OUTCOME_RETURNED, started: false });
    runJob(connection, 'job-late', spec({ command: 'echo late' }));
    await connection.until(() => finished(connection, 'job-late') !== undefined, 5_000, 'the late return');
    expect(finished(connection, 'job-late')?.errorMessage).toContain('draining');
    open('gate');
    expect(await worker.done).toBe(0);
    expect(finished(connection, 'job-1')).toMatchObject({ outcome: JobOutcome.JOB_OUTCOME_EXITED, exitCode: 0 });
  });

  it('reports a cancelled waiting job CANCELLED and not started, and runs the others', async () => {
    const { connection } = await setup(acceptRegistration(50, true, 2));
    runJob(connection, 'job-1', gated('gate'));
    runJob(connection, 'job-2', spec({ command: 'echo never' }));
    runJob(connection, 'job-3', spec({ command: 'echo three' }));
    connection.send({ $case: 'cancelJob', value: { jobId: 'job-2', graceMs: 100 } });
    await connection.until(() => finished(connection, 'job-2') !== undefined, 5_000, 'the cancellation');
    expect(finished(connection, 'job-2')).toMatchObject({ outcome: JobOutcome.JOB_OUTCOME_CANCELLED, started: false, durationMs: 0, lastLogSeq: 0 });
    expect(finished(connection, 'job-1')).toBeUndefined();
    open('gate');
    await connection.until(() => finished(connection, 'job-3') !== undefined, 10_000, 'the last job');
    expect(finished(connection, 'job-1')).toMatchObject({ outcome: JobOutcome.JOB_OUTCOME_EXITED, exitCode: 0 });
    expect(finished(connection, 'job-3')).toMatchObject({ outcome: JobOutcome.JOB_OUTCOME_EXITED, exitCode: 0 });
    expect(connection.logs('job-2')).toEqual([]);
    expect(connection.starts('job-2')).toEqual([]);
  });

  it('on drain gives its waiting jobs back unstarted (RETURNED), as a job sent while it drains, finishes the running one and exits 0', async () => {
    const { worker, connection } = await setup(acceptRegistration(50, true, 2));
    runJob(connection, 'job-1', gated('gate'));
    runJob(connection, 'job-2', spec({ command: 'echo two' }));
    runJob(connection, 'job-3', spec({ command: 'echo three' }));
    await connection.until(() => firstReport(connection, 'job-1') >= 0, 5_000, 'the first start');
    connection.send({ $case: 'drain', value: {} });
    await connection.until(() => finished(connection, 'job-3') !== undefined, 5_000, 'the returns');
    runJob(connection, 'job-late', spec({ command: 'echo late' }));
    await connection.until(() => finished(connection, 'job-late') !== undefined, 5_000, 'the late return');
    for (const id of ['job-2', 'job-3', 'job-late']) {
      expect(finished(connection, id)).toMatchObject({ outcome: JobOutcome.JOB_OUTCOME_RETURNED, started: false });
      expect(connection.logs(id)).toEqual([]);
    }
    expect(finished(connection, 'job-1')).toBeUndefined();
    open('gate');
    expect(await worker.done).toBe(0);
    expect(finished(connection, 'job-1')).toMatchObject({ outcome: JobOutcome.JOB_OUTCOME_EXITED, exitCode: 0 });
  });

  it('starts no waiting job while its stream is broken, and starts it once registered again', async () => {
    let registrations = 0;
    let held: FakeConnection | undefined;
    const { server, connection } = await setup((conn) => {
      registrations += 1;
      if (registrations === 1) acceptRegistration(50, true, 1)(conn);
      else held = conn; // the reconnection is answered when the test says so
    });
    runJob(connection, 'job-1', spec({ command: `while [ ! -e ${join(dir, 'gate')} ]; do sleep 0.02; done; touch ${join(dir, 'first-done')}` }));
    runJob(connection, 'job-2', spec({ command: `touch ${join(dir, 'second-ran')}` }));
    await connection.until(() => firstReport(connection, 'job-1') >= 0, 5_000, 'the first start');
    const next = server.nextConnection();
    connection.call.end();
    await next;
    open('gate');
    await waitFor(() => existsSync(join(dir, 'first-done')), 10_000, 'the first job to end');
    await new Promise((resolve) => setTimeout(resolve, 300)); // time the waiting job would have had to start
    expect(existsSync(join(dir, 'second-ran'))).toBe(false);
    held!.send({ $case: 'registered', value: { sessionToken: 'session-1', heartbeatIntervalMs: 50, readsJobFinishedLines: true, prefetch: 1, takesReturnedJobs: false } });
    await held!.until(() => finished(held!, 'job-2') !== undefined, 5_000, 'the waiting job on the new stream');
    expect(finished(held!, 'job-2')).toMatchObject({ outcome: JobOutcome.JOB_OUTCOME_EXITED, exitCode: 0 });
    expect(existsSync(join(dir, 'second-ran'))).toBe(true);
  });

  it('reconnected to a server that grants no prefetch (an older one): still takes what it was granted, runs its waiting jobs out on drain instead of returning them', async () => {
    let registrations = 0;
    const { server, connection } = await setup((conn) => {
      registrations += 1;
      conn.send({ $case: 'registered', value: { sessionToken: 'session-1', heartbeatIntervalMs: 50, readsJobFinishedLines: false, prefetch: registrations === 1 ? 2 : 0, takesReturnedJobs: false } });
    });
    runJob(connection, 'job-1', gated('gate'));
    runJob(connection, 'job-2', spec({ command: 'echo two' }));
    await connection.until(() => firstReport(connection, 'job-1') >= 0, 5_000, 'the first start');
    const next = server.nextConnection();
    connection.call.end();
    const older = await next;
    await older.until(() => registrations === 2, 5_000, 'the reconnection');
    // The older server's record still allows 1 + 2 jobs (the grant it did not make): it may send one more.
    runJob(older, 'job-3', spec({ command: 'echo three' }));
    older.send({ $case: 'drain', value: {} });
    await new Promise((resolve) => setTimeout(resolve, 200));
    // Nothing refused, nothing given back (an older server would fail a RETURNED job): both wait for the slot.
    expect(finished(older, 'job-2')).toBeUndefined();
    expect(finished(older, 'job-3')).toBeUndefined();
    open('gate');
    await older.until(() => finished(older, 'job-3') !== undefined, 10_000, 'the waiting jobs run out');
    for (const id of ['job-1', 'job-2', 'job-3']) expect(finished(older, id)).toMatchObject({ outcome: JobOutcome.JOB_OUTCOME_EXITED, exitCode: 0 });
  });
});
