/** What the worker does on each successive SIGTERM/SIGINT. */
export interface ShutdownSteps {
  /** First signal: accept no more jobs, let running ones finish, then exit. */
  drain: () => void;
  /** Second signal: cancel the running jobs (kill sequence), then exit. */
  cancel: () => void;
  /** Third signal: kill everything and exit at once. */
  abort: () => void;
  log: (line: string) => void;
}

const SIGNALS = ['SIGTERM', 'SIGINT'] as const;

/**
 * Installs SIGTERM and SIGINT handlers (counted together, as CI agents do): drain, then cancel, then
 * abort. Returns a function that removes them.
 */
export function installShutdownSignals(steps: ShutdownSteps): () => void {
  let received = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    received += 1;
    if (received === 1) {
      steps.log(`${signal}: draining, running jobs finish first (send again to cancel them)`);
      steps.drain();
    } else if (received === 2) {
      steps.log(`${signal}: cancelling running jobs (send again to exit at once)`);
      steps.drain();
      steps.cancel();
    } else {
      steps.log(`${signal}: killing running jobs and exiting now`);
      steps.abort();
    }
  };
  for (const signal of SIGNALS) process.on(signal, onSignal);
  return () => {
    for (const signal of SIGNALS) process.off(signal, onSignal);
  };
}
