import { isTerminalJobState } from '@hodei/core';
import type { Command } from 'commander';
import { withClient, type Context } from '../context';

/** `hodei job cancel ID`: cancels a queued job at once, or asks a running job's worker to stop it. */
export function registerJobCancel(job: Command, ctx: Context): void {
  job
    .command('cancel')
    .description('cancel a queued or running job')
    .argument('<id>', 'job id')
    .addHelpText(
      'after',
      `
A running job gets SIGTERM, then SIGKILL after a grace period. Cancelling a finished job does nothing.

Example:
  $ hodei job cancel job-nhtxomqnhxae`,
    )
    .action(async (id: string, _flags: unknown, command: Command) => {
      const job = await withClient(ctx, command, (client) => client.cancel(id));
      const message =
        job.state === 'CANCELLED'
          ? `job ${job.id} cancelled`
          : isTerminalJobState(job.state)
            ? `job ${job.id} already ended: ${job.state}`
            : `job ${job.id} cancel requested (${job.state})`;
      ctx.io.stdout.write(`${message}\n`);
    });
}
