import type { Provider } from '../src';

/** A provider that never starts a worker: queued jobs stay QUEUED, for tests of the client API alone. */
export const idleProvider: Provider = {
  specificationVersion: 'v1',
  name: 'idle',
  capabilities: { maxWorkers: 1, workerCapacity: 1, labels: {} },
  createWorker: async () => undefined,
  destroyWorker: async () => undefined,
  onWorkerExit: () => () => undefined,
  close: async () => undefined,
};
