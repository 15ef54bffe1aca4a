import type { Command } from 'commander';
import { SERVER_HELP, type Context } from '../context';
import { registerWorkerList } from './worker-list';

/** `hodei worker ...`: the worker commands, sharing `--server`. */
export function registerWorker(program: Command, ctx: Context): void {
  const worker = program
    .command('worker')
    .description("inspect the server's workers")
    .option('--server <address>', SERVER_HELP)
    .addHelpText(
      'after',
      `
Example:
  $ hodei worker list --server 127.0.0.1:50051`,
    );
  registerWorkerList(worker, ctx);
}
