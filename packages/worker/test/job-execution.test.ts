import { mkdtempSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { JobOutcome, LogStream, unpackLogLines, type LogEntry } from '@hodei/core/protocol';
import { describe, expect, it } from 'vitest';
import { runJob } from '../src/job-execution';
import { isAlive, spec, startCollected, survivors, texts, waitFor } from './helpers';

const { LOG_STREAM_STDOUT: STDOUT, LOG_STREAM_STDERR: STDERR, LOG_STREAM_SYSTEM: SYSTEM } = LogStream;

/** Pids a job printed, one per stdout line. */
function pidsIn(entries: readonly LogEntry[]): number[] {
  return texts(entries, STDOUT).filter((text) => /^\d+$/.test(text)).map(Number);
}

describe('job execution', () => {
  it('propagates the exit code and writes the header line first', async () => {
    const job = startCollected(spec({ command: 'echo out; exit 7' }));
    const result = await job.done;
    expect(result).toMatchObject({ outcome: JobOutcome.JOB_OUTCOME_EXITED, exitCode: 7, signal: '', errorMessage: '' });
    expect(result.durationMs).toBeGreaterThanOrEqual(0);
    expect(job.entries[0]).toMatchObject({ seq: 1, stream: SYSTEM, text: '$ echo out; exit 7' });
    expect(texts(job.entries, STDOUT)).toEqual(['out']);
  });

  it('keeps stdout and stderr apart, and quotes args', async () => {
    const job = startCollected(spec({ command: 'echo "to out: $1"; echo to err >&2; printf "%s\\n"', args: ['a b', "c'd"] }));
    const result = await job.done;
    expect(result.exitCode).toBe(0);
    expect(job.entries[0]?.text).toBe(`$ echo "to out: $1"; echo to err >&2; printf "%s\\n" 'a b' 'c'\\''d'`);
    expect(texts(job.entries, STDOUT)).toEqual(['to out: ', 'a b', "c'd"]);
    expect(texts(job.entries, STDERR)).toEqual(['to err']);
  });

  it('runs a script: header, body, EOF, then its real output', async () => {
    const content = 'echo "from script $0" | tr a-z A-Z >/dev/null\necho one\necho two >&2\n';
    const job = startCollected(spec({ script: { interpreter: '', content } }));
    const result = await job.done;
    expect(result).toMatchObject({ outcome: JobOutcome.JOB_OUTCOME_EXITED, exitCode: 0 });
    expect(texts(job.entries, SYSTEM)).toEqual([
      "$ /bin/bash << 'EOF'",
      'echo "from script $0" | tr a-z A-Z >/dev/null',
      'echo one',
      'echo two >&2',
      'EOF',
    ]);
    expect(texts(job.entries, STDOUT)).toEqual(['one']);
    expect(texts(job.entries, STDERR)).toEqual(['two']);
  });

  it('runs a script with another interpreter', async () => {
    const job = startCollected(spec({ script: { interpreter: process.execPath, content: 'console.log(6 * 7); process.exit(3)' } }));
    const result = await job.done;
    expect(job.entries[0]?.text).toBe(`$ ${process.execPath} << 'EOF'`);
    expect(texts(job.entries, STDOUT)).toEqual(['42']);
    expect(result.exitCode).toBe(3);
  });

  it('passes the job env and HODEI_JOB_ID, never HODEI_OTP_TOKEN', async () => {
    const job = startCollected(spec({ command: 'echo "$GREETING|$HODEI_JOB_ID|${HODEI_OTP_TOKEN-unset}|$FROM_WORKER"', env: { GREETING: 'hi there' } }), {
      baseEnv: { ...process.env, HODEI_OTP_TOKEN: 'secret-otp', FROM_WORKER: 'inherited' },
    });
    await job.done;
    expect(texts(job.entries, STDOUT)).toEqual(['hi there|job-1|unset|inherited']);
  });

  it('masks a secret that falls across the cut of a line longer than a piece (64 Ki characters)', async () => {
    const token = 'S3CRET-TOKEN-0123456789';
    // 65,530 characters, then the token: the cut at 65,536 falls inside it.
    const job = startCollected(spec({ command: 'head -c 65530 /dev/zero | tr "\\0" a; echo "$DEPLOY_TOKEN tail"', env: { DEPLOY_TOKEN: token } }));
    await job.done;
    const stdout = texts(job.entries, STDOUT);
    expect(stdout.join('')).toBe(`${'a'.repeat(65_530)}*** tail`);
    expect(stdout.filter((text) => /S3CRET|0123456789|TOKEN-/.test(text))).toEqual([]);
  });

  it('runs in the working directory', async () => {
    const dir = realpathSync(mkdtempSync(`${tmpdir()}/hodei-wd-`));
    const job = startCollected(spec({ command: 'pwd', workingDir: dir }));
    await job.done;
    expect(texts(job.entries, STDOUT)).toEqual([dir]);
  });

  it('reports FAILED_TO_START for a missing working directory or interpreter', async () => {
    const badDir = startCollected(spec({ command: 'true', workingDir: '/no/such/dir' }));
    const r1 = await badDir.done;
    expect(r1).toMatchObject({ outcome: JobOutcome.JOB_OUTCOME_FAILED_TO_START, exitCode: -1 });
    expect(r1.errorMessage).toContain('/no/such/dir');
    expect(texts(badDir.entries, STDERR).join()).toContain('/no/such/dir');
    // A path through a file: named as such, not blamed on the interpreter.
    const file = join(mkdtempSync(`${tmpdir()}/hodei-wd-`), 'a-file');
    writeFileSync(file, '');
    const throughFile = startCollected(spec({ command: 'true', workingDir: `${file}/sub` }));
    expect((await throughFile.done).errorMessage).toBe(`working directory ${file}/sub does not exist: a part of its path is not a directory`);

    const badInterpreter = startCollected(spec({ script: { interpreter: '/no/such/python', content: 'print(1)' } }));
    const r2 = await badInterpreter.done;
    expect(r2.outcome).toBe(JobOutcome.JOB_OUTCOME_FAILED_TO_START);
    expect(r2.errorMessage).toContain('/no/such/python');

    const empty = startCollected(spec({}));
    expect((await empty.done).outcome).toBe(JobOutcome.JOB_OUTCOME_FAILED_TO_START);
  });

  it('times out: TIMED_OUT, the notice on stderr, and no process of the tree survives', async () => {
    const job = startCollected(spec({ command: 'sleep 1000 & echo $!; (sleep 1000 & echo $!; wait) & sleep 1000', timeoutMs: 1000 }));
    const started = Date.now();
    const result = await job.done;
    const elapsed = Date.now() - started;
    expect(result).toMatchObject({ outcome: JobOutcome.JOB_OUTCOME_TIMED_OUT, exitCode: -1, signal: 'SIGTERM' });
    expect(elapsed).toBeGreaterThanOrEqual(950);
    expect(elapsed).toBeLessThan(3000);
    expect(texts(job.entries, STDERR)).toEqual(['Command timed out after 1 seconds']);
    const pids = pidsIn(job.entries);
    expect(pids).toHaveLength(2);
    expect(await survivors([...pids, job.execution.pid!])).toEqual([]);
  });

  it('formats fractional timeouts without trailing zeros', async () => {
    const job = startCollected(spec({ command: 'sleep 1000', timeoutMs: 250 }));
    await job.done;
    expect(texts(job.entries, STDERR)).toEqual(['Command timed out after 0.25 seconds']);
  });

  it('cancels: CANCELLED and the whole tree is gone; a second cancel (a resent CancelJob) adds no second line', async () => {
    const job = startCollected(spec({ command: 'sleep 1000 & echo $!; sleep 1000 & echo $!; wait' }));
    await waitFor(() => pidsIn(job.entries).length === 2, 5000, 'the pids');
    job.execution.cancel(200);
    job.execution.cancel(200);
    const result = await job.done;
    expect(result.outcome).toBe(JobOutcome.JOB_OUTCOME_CANCELLED);
    expect(texts(job.entries, SYSTEM).filter((text) => text === 'Job cancelled')).toHaveLength(1);
    expect(await survivors([...pidsIn(job.entries), job.execution.pid!])).toEqual([]);
  });

  it('a cancel after the command exited (a background process holding its output) keeps its result and stops the rest', async () => {
    const job = startCollected(spec({ command: 'sleep 1000 & echo $!; echo main done' }), { pipeGraceMs: 60_000 });
    await waitFor(() => texts(job.entries, STDOUT).includes('main done'), 5000, 'the main output');
    const main = job.execution.pid!;
    await waitFor(() => !isAlive(main), 5000, 'the main process to exit');
    job.execution.cancel(200);
    const result = await job.done;
    expect(result).toMatchObject({ outcome: JobOutcome.JOB_OUTCOME_EXITED, exitCode: 0 });
    expect(texts(job.entries, SYSTEM)).not.toContain('Job cancelled');
    expect(await survivors(pidsIn(job.entries))).toEqual([]);
  });

  it('SIGKILLs a job that ignores SIGTERM after the grace', async () => {
    const job = startCollected(spec({ command: "trap '' TERM; sleep 1000 & echo $!; wait; wait; echo survived TERM; sleep 1000" }), { killGraceMs: 400 });
    await waitFor(() => pidsIn(job.entries).length === 1, 5000, 'the pid');
    const cancelledAt = Date.now();
    job.execution.cancel();
    const result = await job.done;
    expect(Date.now() - cancelledAt).toBeGreaterThanOrEqual(380);
    expect(result).toMatchObject({ outcome: JobOutcome.JOB_OUTCOME_CANCELLED, exitCode: -1, signal: 'SIGKILL' });
    expect(await survivors([...pidsIn(job.entries), job.execution.pid!])).toEqual([]);
  });

  it('does not hang when a background process keeps the pipes open after the main process exited', async () => {
    const job = startCollected(spec({ command: 'sleep 1000 & echo $!; echo main done' }), { pipeGraceMs: 200 });
    const started = Date.now();
    const result = await job.done;
    expect(Date.now() - started).toBeLessThan(2000);
    expect(result).toMatchObject({ outcome: JobOutcome.JOB_OUTCOME_EXITED, exitCode: 0 });
    expect(texts(job.entries, STDOUT)).toContain('main done');
    expect(await survivors(pidsIn(job.entries))).toEqual([]);
  });

  it('kills background processes that detached from the pipes once the job is over', async () => {
    const job = startCollected(spec({ command: 'sleep 1000 >/dev/null 2>&1 & echo $!' }));
    await job.done;
    expect(await survivors(pidsIn(job.entries))).toEqual([]);
  });

  it('delivers 100,000 lines complete, in order, with contiguous seq', async () => {
    const job = startCollected(spec({ command: 'seq 1 100000; echo done >&2' }));
    const result = await job.done;
    expect(result.exitCode).toBe(0);
    expect(job.entries.map((entry) => entry.seq)).toEqual(Array.from({ length: job.entries.length }, (_, i) => i + 1));
    const out = texts(job.entries, STDOUT);
    expect(out).toHaveLength(100_000);
    expect(out.every((text, i) => text === String(i + 1))).toBe(true);
    expect(job.batches).toBeLessThan(1000);
  });

  it('pauses the pipes under back-pressure and loses nothing', async () => {
    const lines = 300_000;
    const entries: LogEntry[] = [];
    let waiter: (() => void) | undefined;
    let pauses = 0;
    let sinceResume = 0;
    let mostWhilePaused = 0;
    const execution = runJob({
      jobId: 'bp',
      spec: spec({ command: `seq 1 ${lines}` }),
      batching: { maxBatchEntries: 500 },
      sink: (packed) => {
        const batch = unpackLogLines(packed);
        entries.push(...batch);
        sinceResume += batch.length;
        mostWhilePaused = Math.max(mostWhilePaused, sinceResume);
        return false; // always "full": every flush asks the producer to pause
      },
      whenWritable: (resume) => {
        pauses += 1;
        waiter = resume;
      },
    });
    const timer = setInterval(() => {
      const resume = waiter;
      waiter = undefined;
      sinceResume = 0;
      resume?.();
    }, 20);
    const result = await execution.done;
    clearInterval(timer);
    expect(result.exitCode).toBe(0);
    expect(texts(entries, STDOUT)).toEqual(Array.from({ length: lines }, (_, i) => String(i + 1)));
    // While paused, only what was already read (about one 64 KiB pipe chunk, ~9,400 lines) comes through;
    // once the process exits, Node resumes its pipes to flush them (a few chunks more). Without pausing,
    // all 300,000 lines would arrive in the first window.
    expect(pauses).toBeGreaterThan(10);
    expect(mostWhilePaused).toBeLessThan(100_000);
  });

  it('the job itself is alive while it runs (sanity check of isAlive)', async () => {
    const job = startCollected(spec({ command: 'sleep 1000' }));
    await waitFor(() => job.execution.pid !== undefined, 2000, 'the spawn');
    expect(isAlive(job.execution.pid!)).toBe(true);
    job.execution.kill();
    expect((await job.done).outcome).toBe(JobOutcome.JOB_OUTCOME_CANCELLED);
    expect(await survivors([job.execution.pid!])).toEqual([]);
  });
});
