import type { Command } from 'commander';
import type { Job } from '@hodei/core';
import { withClient, type Context } from '../context';
import { EXIT, exitCodeForJob } from '../exit-codes';
import { writeLogLine } from '../format';
import { formatDuration } from '../table';
import { showWaitStatus } from '../wait-status';
import { addJobSpecOptions, buildJobSpec, type JobSpecFlags } from '../job-spec-options';

interface RunFlags extends JobSpecFlags {
  quiet?: boolean;
}

/**
 * `hodei job run`: queues a job, streams its output live (job stdout → stdout, job stderr and system
 * lines → stderr) and exits with the job's exit code. Ctrl-C cancels the job; a second Ctrl-C stops waiting.
 */
export function registerJobRun(job: Command, ctx: Context): void {
  addJobSpecOptions(job.command('run').description('queue a job, stream its output, exit with its exit code'))
    .option('-q, --quiet', 'do not print the job id and system lines on stderr')
    .addHelpText(
      'after',
      `
Exit status: the job's exit code; 124 if it timed out; 130 if it was cancelled (also when the reader of
its output exits, e.g. | head -1: the job is then cancelled, as on Ctrl-C); 1 if it failed for another
reason (worker lost, could not start); 2 for invalid input.

Examples:
  $ hodei job run --name "Shell Test" -- "echo 'test' | grep 'test'"
  $ hodei job run --timeout 90s --env GREETING=hi -- 'echo "$GREETING"'
  $ hodei job run -- printf '%s\\n' "one arg" "another"`,
    )
    .action(async (operands: string[], flags: RunFlags, command: Command) => {
      const spec = buildJobSpec(flags, operands);
      const { io } = ctx;
      ctx.exitCode = await withClient(ctx, command, async (client) => {
        const queued = await client.queue(spec);
        if (!flags.quiet) io.stderr.write(`hodei: job ${queued.id} queued\n`);
        const stop = new AbortController();
        let interrupts = 0;
        const interrupt = () => {
          interrupts += 1;
          if (interrupts === 1) {
            if (!flags.quiet) io.stderr.write(`hodei: cancelling job ${queued.id} (interrupt again to stop waiting)\n`);
            client.cancel(queued.id).catch((error: unknown) => {
              io.stderr.write(`hodei: could not cancel job ${queued.id}: ${(error as Error).message}\n`);
            });
          } else {
            stop.abort();
          }
        };
        const unsubscribe = io.onSignal(interrupt);
        // The reader of its output went away (`| head -1`): as a first Ctrl-C, the job is cancelled.
        const unsubscribeClosed = io.onOutputClosed?.(() => {
          if (interrupts === 0) interrupt();
        });
        const clearStatus = flags.quiet ? () => undefined : showWaitStatus(client, queued.id, io);
        try {
          let done: Job | undefined;
          try {
            for await (const line of client.logs(queued.id, { follow: true, signal: stop.signal })) {
              clearStatus();
              if (flags.quiet && line.stream === 'system') continue;
              writeLogLine(line, io.stdout, io.stderr);
            }
            clearStatus();
            done = stop.signal.aborted ? undefined : await client.wait(queued.id, { signal: stop.signal });
          } catch (error) {
            if (!stop.signal.aborted) throw error;
          }
          if (!done) {
            io.stderr.write(`hodei: stopped waiting; job ${queued.id} may still be running\n`);
            return EXIT.CANCELLED;
          }
          const code = exitCodeForJob(done);
          if (done.state === 'TIMED_OUT') {
            io.stderr.write(`hodei: job ${done.id} timed out after ${formatDuration(done.spec.timeoutMs)}\n`);
          } else if (done.state === 'CANCELLED') {
            io.stderr.write(`hodei: job ${done.id} was cancelled\n`);
          } else if (done.state === 'FAILED' && code === EXIT.FAILURE && done.exitCode === undefined) {
            io.stderr.write(`hodei: job ${done.id} failed: ${done.errorMessage ?? done.failureReason ?? 'unknown reason'}\n`);
          }
          return code;
        } finally {
          clearStatus();
          unsubscribe();
          unsubscribeClosed?.();
        }
      });
    });
}
