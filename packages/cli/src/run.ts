import { CommanderError } from 'commander';
import type { Context } from './context';
import { formatError } from './errors';
import { exitCodeForError } from './exit-codes';
import { processIo, type Io } from './io';
import { buildProgram, exitCodeForCommanderError } from './program';

/**
 * Runs the CLI with `argv` (the arguments after `hodei`) and resolves with the exit code. Writes through
 * `io`; never calls `process.exit` (except on a second signal to `hodei server`).
 */
export async function run(argv: readonly string[], io: Io = processIo()): Promise<number> {
  const ctx: Context = { io, exitCode: 0 };
  const program = buildProgram(ctx);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return ctx.exitCode;
  } catch (error) {
    if (error instanceof CommanderError) return exitCodeForCommanderError(error);
    io.stderr.write(`${formatError(error)}\n`);
    if (io.env.HODEI_DEBUG && error instanceof Error && error.stack) io.stderr.write(`${error.stack}\n`);
    return exitCodeForError(error);
  }
}
