/** Characters that never need quoting in a POSIX shell word. */
const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/**
 * Quotes one argument for a POSIX shell so that it reaches the command as a single word, unchanged.
 * Plain words are left as they are; anything else is single-quoted (`'` becomes `'\''`).
 */
export function shellQuote(arg: string): string {
  if (SAFE.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/**
 * The command line a command job runs under `/bin/bash -c`: the command as written (so pipes, globs and
 * `$VAR` work), followed by each extra argument shell-quoted (never joined raw).
 */
export function buildCommandLine(command: string, args: readonly string[] = []): string {
  if (args.length === 0) return command;
  return `${command} ${args.map(shellQuote).join(' ')}`;
}
