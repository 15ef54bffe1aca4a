import type { Command } from 'commander';
import { withClient, type Context } from '../context';
import { writeLogLine } from '../format';
import { parseIntegerFlag } from '../options';

/** `hodei job logs ID`: prints a job's output (stdout → stdout, stderr and system lines → stderr). */
export function registerJobLogs(job: Command, ctx: Context): void {
  job
    .command('logs')
    .description("print a job's output; with --follow, live until the job ends")
    .argument('<id>', 'job id')
    .option('-f, --follow', 'keep streaming until the job ends')
    .option('--from <seq>', 'start at this line number (lines are numbered from 1)')
    .option('--no-system', 'leave out system lines (e.g. the "$ command" header)')
    .addHelpText(
      'after',
      `
Job stdout lines go to stdout; job stderr lines and system lines go to stderr.

Examples:
  $ hodei job logs job-nhtxomqnhxae
  $ hodei job logs job-nhtxomqnhxae --follow 2>/dev/null`,
    )
    .action(async (id: string, flags: { follow?: boolean; from?: string; system: boolean }, command: Command) => {
      const fromSeq = flags.from === undefined ? 1 : parseIntegerFlag(flags.from, '--from', 1, Number.MAX_SAFE_INTEGER);
      await withClient(ctx, command, async (client) => {
        const stop = new AbortController();
        const unsubscribe = ctx.io.onSignal(() => stop.abort());
        // The reader of the output went away (`| head`): nothing more to print, and nothing went wrong.
        let readerGone = false;
        const unsubscribeClosed = ctx.io.onOutputClosed?.(() => {
          readerGone = true;
          stop.abort();
        });
        try {
          for await (const line of client.logs(id, { follow: flags.follow ?? false, fromSeq, signal: stop.signal })) {
            if (!flags.system && line.stream === 'system') continue;
            writeLogLine(line, ctx.io.stdout, ctx.io.stderr);
          }
        } catch (error) {
          if (!readerGone) throw error;
        } finally {
          unsubscribe();
          unsubscribeClosed?.();
        }
        if (stop.signal.aborted && !readerGone) ctx.exitCode = 130;
      });
    });
}
