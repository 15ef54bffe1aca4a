import type { Command } from 'commander';
import { withClient, type Context } from '../context';
import { jobTable, jobToJson, toJson } from '../format';
import { collect, parseIntegerFlag, parseStates } from '../options';

/** `hodei job list`: jobs, newest first. */
export function registerJobList(job: Command, ctx: Context): void {
  job
    .command('list')
    .description('list jobs, newest first')
    .option('--state <state>', 'only jobs in this state (repeatable): QUEUED, RUNNING, SUCCEEDED, ...', collect)
    .option('--limit <n>', 'at most n jobs (default: 100)')
    .option('--json', 'print a JSON array of jobs')
    .addHelpText(
      'after',
      `
Examples:
  $ hodei job list
  $ hodei job list --state running --state queued
  $ hodei job list --json | jq -r '.[] | "\\(.id) \\(.state) \\(.exitCode)"'`,
    )
    .action(async (flags: { state?: string[]; limit?: string; json?: boolean }, command: Command) => {
      const states = parseStates(flags.state);
      const limit = flags.limit === undefined ? undefined : parseIntegerFlag(flags.limit, '--limit', 1, 10_000);
      const jobs = await withClient(ctx, command, (client) =>
        client.list({ ...(states.length ? { states } : {}), ...(limit ? { limit } : {}) }),
      );
      ctx.io.stdout.write(flags.json ? toJson(jobs.map(jobToJson)) : jobTable(jobs));
    });
}
