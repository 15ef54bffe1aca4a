import type { Command } from 'commander';
import { addConnectionOptions, type Context } from '../context';
import { registerJobCancel } from './job-cancel';
import { registerJobGet } from './job-get';
import { registerJobList } from './job-list';
import { registerJobLogs } from './job-logs';
import { registerJobQueue } from './job-queue';
import { registerJobRun } from './job-run';

/** `hodei job ...`: the job commands, sharing `--server`, `--tls-ca` and `--auth-token`. */
export function registerJob(program: Command, ctx: Context): void {
  const job = addConnectionOptions(program.command('job'))
    .description('queue, run, inspect and cancel jobs')
    .addHelpText(
      'after',
      `
Examples:
  $ hodei job run --name "Shell Test" -- "echo 'test' | grep 'test'"
  $ HODEI_SERVER=10.0.0.5:50051 hodei job list`,
    );
  registerJobQueue(job, ctx);
  registerJobRun(job, ctx);
  registerJobLogs(job, ctx);
  registerJobGet(job, ctx);
  registerJobList(job, ctx);
  registerJobCancel(job, ctx);
}
