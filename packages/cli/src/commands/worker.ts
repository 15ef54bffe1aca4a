import type { Command } from 'commander';
import { addConnectionOptions, type Context } from '../context';
import { registerWorkerList } from './worker-list';

/** `hodei worker ...`: the worker commands, sharing `--server`, `--tls-ca` and `--auth-token`. */
export function registerWorker(program: Command, ctx: Context): void {
  const worker = addConnectionOptions(program.command('worker'))
    .description("inspect the server's workers")
    .addHelpText(
      'after',
      `
Example:
  $ hodei worker list --server 127.0.0.1:50051`,
    );
  registerWorkerList(worker, ctx);
}
