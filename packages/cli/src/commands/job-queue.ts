import type { Command } from 'commander';
import { withClient, type Context } from '../context';
import { addJobSpecOptions, buildJobSpec, type JobSpecFlags } from '../job-spec-options';

/** `hodei job queue`: queues a job and prints its id alone on the last line. */
export function registerJobQueue(job: Command, ctx: Context): void {
  addJobSpecOptions(job.command('queue').description('queue a job and print its id'))
    .addHelpText(
      'after',
      `
Examples:
  $ hodei job queue --name sleepy --command "sleep 30"
  $ hodei job queue --name build --env CI=1 --timeout 5m -- "make test"
  $ hodei job queue --script ./deploy.sh --interpreter /bin/sh`,
    )
    .action(async (operands: string[], flags: JobSpecFlags, command: Command) => {
      const spec = buildJobSpec(flags, operands);
      const queued = await withClient(ctx, command, (client) => client.queue(spec));
      ctx.io.stdout.write(`${queued.id}\n`);
    });
}
