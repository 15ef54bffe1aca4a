import { providerConformance } from '@hodei/core/testing';
import { ProcessProvider } from '../src';

interface Internals {
  workers: Map<string, { child: { pid?: number; kill(signal: NodeJS.Signals): boolean } }>;
}

/** The worker's child process, through the provider's private map (tests only). */
function childOf(provider: ProcessProvider, workerId: string) {
  return (provider as unknown as Internals).workers.get(workerId)?.child;
}

const knownPids = new Map<string, number>();

providerConformance('ProcessProvider', async () => ({ provider: new ProcessProvider({ maxWorkers: 2, stopGraceMs: 2_000 }) }), {
  killWorker: async (provider, workerId) => {
    const child = childOf(provider, workerId);
    if (!child) throw new Error(`no process for worker ${workerId}`);
    child.kill('SIGKILL');
  },
  isWorkerRunning: async (provider, workerId) => {
    // Remember the pid: once destroyed, the provider forgets the worker, but the process must be gone too.
    const pid = childOf(provider, workerId)?.pid ?? knownPids.get(workerId);
    if (pid === undefined) return false;
    knownPids.set(workerId, pid);
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  },
});
