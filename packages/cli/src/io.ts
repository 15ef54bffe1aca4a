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
}

/** The real process: `process.stdout`, `process.stderr`, `process.env` and its SIGINT/SIGTERM handlers. */
export function processIo(): Io {
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
  };
}
