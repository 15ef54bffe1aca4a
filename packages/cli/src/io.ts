/** Where the CLI writes and what it reads from its environment; injectable for in-process tests. */
export interface Io {
  /** Where command output goes (tables, JSON, job logs). */
  stdout: { write(text: string): unknown };
  /** Where errors and status lines go. */
  stderr: { write(text: string): unknown };
  /** Environment the CLI reads `HODEI_*` settings from. */
  env: Record<string, string | undefined>;
  /** Whether stderr is a terminal: transient status lines are drawn only there. */
  stderrIsTerminal?: boolean;
  /** Subscribes to SIGINT/SIGTERM; returns an unsubscribe function. */
  onSignal(listener: (signal: NodeJS.Signals) => void): () => void;
  /**
   * Subscribes to the end of whoever reads stdout (`hodei job run ... | head -1`: the reader exited); called once.
   * Returns an unsubscribe function. Absent: stdout never closes (in-process tests).
   */
  onOutputClosed?(listener: () => void): () => void;
  /** Why writing stdout failed other than its reader going away (a full disk, say), if it did: the CLI then exits 1. */
  outputFailure?(): string | undefined;
}

/**
 * The real process: `process.stdout`, `process.stderr`, `process.env` and its SIGINT/SIGTERM handlers. A write to
 * a closed stdout or stderr (the reader of a pipe exited) is not an error of the CLI's: it loses that output, the
 * commands that print a job's output stop as `onOutputClosed` says, and `hodei server` (status lines only) serves on.
 */
export function processIo(): Io {
  const outputClosed = new Set<() => void>();
  let closed = false;
  let failure: string | undefined;
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (closed) return;
    closed = true;
    // The reader exited (EPIPE) is no failure; anything else (ENOSPC...) loses output the user asked for.
    if (error.code !== 'EPIPE') failure = error.message;
    for (const listener of [...outputClosed]) listener();
  });
  process.stderr.on('error', () => undefined);
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    stderrIsTerminal: Boolean(process.stderr.isTTY),
    onSignal(listener) {
      process.on('SIGINT', listener);
      process.on('SIGTERM', listener);
      return () => {
        process.off('SIGINT', listener);
        process.off('SIGTERM', listener);
      };
    },
    onOutputClosed(listener) {
      outputClosed.add(listener);
      return () => outputClosed.delete(listener);
    },
    outputFailure: () => failure,
  };
}
