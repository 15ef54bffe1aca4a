import { Command, CommanderError } from 'commander';
import { registerJob } from './commands/job';
import { registerMigrate } from './commands/migrate';
import { registerServer } from './commands/server';
import { registerWorker } from './commands/worker';
import type { Context } from './context';
import { EXIT } from './exit-codes';

export const VERSION = '0.1.0';

/** The `hodei` command tree. Commander errors are thrown (exitOverride), never `process.exit`. */
export function buildProgram(ctx: Context): Command {
  const { io } = ctx;
  const program = new Command('hodei')
    .description('Hodei Jobs: run shell jobs on workers provisioned on demand, streamed back live.')
    .version(VERSION, '-V, --version')
    .exitOverride()
    .showSuggestionAfterError()
    .configureHelp({ showGlobalOptions: true })
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
      outputError: (text, write) => write(`hodei: ${text.replace(/^error: /, '')}`),
    })
    .addHelpText(
      'after',
      `
Examples:
  $ hodei server --max-workers 4 &
  $ hodei job run --name "Shell Test" -- "echo 'test' | grep 'test'"
  $ hodei job list`,
    );
  registerServer(program, ctx);
  registerJob(program, ctx);
  registerWorker(program, ctx);
  registerMigrate(program, ctx);
  return program;
}

/** Exit code for an error commander threw while parsing (help and version are successes). */
export function exitCodeForCommanderError(error: CommanderError): number {
  if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') return EXIT.OK;
  return EXIT.USAGE;
}

export { CommanderError };
