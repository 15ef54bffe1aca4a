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
 * `$VAR` work), followed by each extra argument shell-quoted (never joined raw). With arguments, the command's
 * trailing whitespace goes first: a command ending in a newline (a YAML block) would run them as a command of
 * their own. (A command ending in a `#` comment still swallows them: write its arguments before the comment.)
 */
export function buildCommandLine(command: string, args: readonly string[] = []): string {
  if (args.length === 0) return command;
  return `${command.trimEnd()} ${args.map(shellQuote).join(' ')}`;
}
