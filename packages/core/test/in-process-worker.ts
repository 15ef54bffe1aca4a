import type { Job } from '../src/domain/job';
import type { JobController } from '../src/engine/job-controller';
import type { WorkerChannel } from '../src/engine/worker-channel';
import type { CreateWorkerRequest, Provider } from '../src/ports/provider';

/** What an in-process worker was asked to run. */
export interface InProcessRun {
  workerId: string;
  job: Job;
  firstLogSeq: number;
}

/**
 * A provider of one in-process worker of capacity `capacity` (default 1), registered with `controller()` without
 * gRPC; each run it is sent goes to `onRun` (which may report back to the controller, or hold the run for the test).
 */
export function inProcessWorkerProvider(controller: () => JobController, onRun: (run: InProcessRun) => void, capacity = 1): Provider {
  return {
    specificationVersion: 'v1',
    name: 'inproc',
    capabilities: { maxWorkers: 1, workerCapacity: capacity, labels: {} },
    async createWorker({ workerId, otp }: CreateWorkerRequest) {
      const channel: WorkerChannel = {
        runJob: (job: Job, firstLogSeq: number) => onRun({ workerId, job, firstLogSeq }),
        cancelJob() {},
        drain() {},
        close() {},
      };
      setImmediate(() => void controller().registerWorker({ workerId, otp, capacity }, channel).catch(() => undefined));
    },
    async destroyWorker() {},
    onWorkerExit: () => () => undefined,
    async close() {},
  };
}

/** Polls `probe` every 10 ms until it returns a value, or throws after `timeoutMs`. */
export async function until<T>(probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
