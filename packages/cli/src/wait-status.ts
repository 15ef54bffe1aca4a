import type { HodeiClient, Job } from '@hodei/core';
import type { Io } from './io';

const CLEAR_LINE = '\r\x1b[2K';

/** What the user waits for, in one line. */
export async function describeWait(client: HodeiClient, job: Job): Promise<string | undefined> {
  if (job.state === 'ASSIGNED') return `starting on worker ${job.workerId ?? ''}...`;
  if (job.state === 'RUNNING') return `running on worker ${job.workerId ?? ''}...`;
  if (job.state !== 'QUEUED') return undefined;
  const workers = await client.listWorkers();
  const starting = workers.find((worker) => worker.state === 'CREATING' || worker.state === 'CONNECTING');
  return starting ? `provisioning worker via ${starting.provider}...` : 'waiting for a free worker...';
}

/**
 * A one-line status on a terminal's stderr while `hodei job run` waits for its job to start ("provisioning
 * worker via docker...", "running on worker w-..."). It is erased before the job's first line is printed
 * and never drawn when stderr is not a terminal, so it cannot pollute the job's output or a log file.
 */
export function showWaitStatus(client: HodeiClient, jobId: string, io: Io): () => void {
  if (!io.stderrIsTerminal) return () => undefined;
  const abort = new AbortController();
  let drawn = false;
  void (async () => {
    try {
      for await (const job of client.watch(jobId, { signal: abort.signal })) {
        const text = await describeWait(client, job);
        if (abort.signal.aborted) return;
        if (text) {
          io.stderr.write(`${CLEAR_LINE}hodei: ${text}`);
          drawn = true;
        }
      }
    } catch {
      // The status is a courtesy: the log stream reports real errors.
    }
  })();
  return () => {
    if (abort.signal.aborted) return;
    abort.abort();
    if (drawn) io.stderr.write(CLEAR_LINE);
  };
}
