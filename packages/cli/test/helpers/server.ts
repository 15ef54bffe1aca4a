import { startCli, pidsWithEnv, until, type CliResult } from './cli';
import type { ChildProcess } from 'node:child_process';

export interface TestServer {
  address: string;
  child: ChildProcess;
  /** Pids of this server's workers and their jobs alive now. */
  workerPids(): number[];
  /** Sends one signal (only the first call signals; a second signal would abandon the clean shutdown). */
  signal(signal: NodeJS.Signals): void;
  /** SIGTERM unless already signalled; resolves with how the server exited and the worker pids still alive afterwards. */
  stop(): Promise<{ result: CliResult; leftover: number[] }>;
  /** What the server printed so far. */
  output(): { stdout: string; stderr: string };
}

/** Runs `hodei server --port 0 --max-workers 4` and reads its address from the first stdout line. */
export async function startServer(extra: readonly string[] = [], env?: Record<string, string | undefined>): Promise<TestServer> {
  const { child, result, output } = startCli(['server', '--port', '0', '--max-workers', '4', ...extra], {
    timeoutMs: 120_000,
    ...(env ? { env } : {}),
  });
  const address = await new Promise<string>((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`server did not start: ${seen}`)), 15_000);
    child.stdout!.on('data', (text: string) => {
      seen += text;
      const match = /^Hodei server listening on (\S+:\d+)( \(TLS\))?$/m.exec(seen);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    void result.then((exit) => reject(new Error(`server exited early (${exit.code}): ${exit.stderr}`)));
  });
  const workerPids = () => pidsWithEnv('HODEI_SERVER_ADDRESS', address);
  let signalled = false;
  const signal = (name: NodeJS.Signals) => {
    if (signalled) return;
    signalled = true;
    child.kill(name);
  };
  return {
    address,
    child,
    workerPids,
    signal,
    output,
    async stop() {
      signal('SIGTERM');
      const exit = await result;
      // The server waits for its workers before exiting; give stragglers a moment to be reaped anyway.
      const leftover = await until(() => (workerPids().length === 0 ? [] : undefined), 3_000).catch(() => workerPids());
      return { result: exit, leftover };
    },
  };
}
