import type { Command } from 'commander';
import { withClient, type Context } from '../context';
import { toJson, workerTable, workerToJson } from '../format';

/** `hodei worker list`: the server's workers. */
export function registerWorkerList(worker: Command, ctx: Context): void {
  worker
    .command('list')
    .description("list the server's workers")
    .option('--json', 'print a JSON array of workers')
    .option('--all', 'include TERMINATED and LOST workers')
    .addHelpText(
      'after',
      `
Examples:
  $ hodei worker list
  $ hodei worker list --json | jq length`,
    )
    .action(async (flags: { json?: boolean; all?: boolean }, command: Command) => {
      const all = await withClient(ctx, command, (client) => client.listWorkers());
      const workers = flags.all ? all : all.filter((w) => w.state !== 'TERMINATED' && w.state !== 'LOST');
      ctx.io.stdout.write(flags.json ? toJson(workers.map(workerToJson)) : workerTable(workers));
    });
}
