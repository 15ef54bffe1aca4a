import type { Command } from 'commander';
import { withClient, type Context } from '../context';
import { jobDetails, jobToJson, toJson } from '../format';

/** `hodei job get ID`: one job's state and details. */
export function registerJobGet(job: Command, ctx: Context): void {
  job
    .command('get')
    .description("show a job's state and details")
    .argument('<id>', 'job id')
    .option('--json', 'print the job as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ hodei job get job-nhtxomqnhxae
  $ hodei job get job-nhtxomqnhxae --json | jq -r .state`,
    )
    .action(async (id: string, flags: { json?: boolean }, command: Command) => {
      const found = await withClient(ctx, command, (client) => client.get(id));
      ctx.io.stdout.write(flags.json ? toJson(jobToJson(found)) : jobDetails(found));
    });
}
