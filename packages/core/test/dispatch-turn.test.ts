import { afterEach, describe, expect, it } from 'vitest';
import type { JobController } from '../src/engine/job-controller';
import { MemoryStore } from '../src/store/memory-store';
import { reportRun, startInProcessEngine, until } from './in-process-worker';

let controller: JobController | undefined;

afterEach(async () => {
  await controller?.stop();
  controller = undefined;
});

describe('a job queued while a worker is idle', () => {
  // gRPC sends what is written during a turn of the event loop at that turn's check phase: a job handed to its
  // worker's channel within the turn that queued it leaves then, not a turn later behind other I/O.
  it('is handed to the worker in the turn of the event loop that queued it', async () => {
    const store = new MemoryStore();
    const engine = await startInProcessEngine({ store });
    controller = engine.controller;
    // A first job brings the worker up; once it ran, the worker is idle and no pass is pending.
    const first = await controller.queue({ name: 'first', command: 'true' });
    await reportRun(controller, await until(() => engine.runs[0]));
    await until(async () => ((await store.getJob(first.id))?.state === 'SUCCEEDED' ? true : undefined));
    await until(async () => {
      const [worker] = await store.listWorkers({ states: ['READY'] });
      return worker?.runningJobIds.length === 0 ? worker : undefined;
    });
    await new Promise((resolve) => setImmediate(resolve));

    // An immediate queued before the job: it runs in this turn's check phase, after the I/O of the turn.
    const sentWithinTheTurn = new Promise<number>((resolve) => setImmediate(() => resolve(engine.runs.length)));
    const next = await controller.queue({ name: 'next', command: 'true' });
    expect(await sentWithinTheTurn).toBe(2);
    expect(engine.runs[1]!.job.id).toBe(next.id);
  });

  it('shares one pass among the calls of one turn after the first (a burst does not run a pass per call)', async () => {
    let passes = 0;
    const store = new (class extends MemoryStore {
      override async listWorkersAndQueue(...args: Parameters<MemoryStore['listWorkersAndQueue']>) {
        passes += 1;
        return super.listWorkersAndQueue(...args);
      }
    })();
    const engine = await startInProcessEngine({ store, capacity: 100 });
    controller = engine.controller;
    const engineUnderTest = controller;
    await new Promise((resolve) => setTimeout(resolve, 20));
    passes = 0;
    // Fifty calls in one timers phase: each its own callback, as the calls of one poll's I/O are.
    await new Promise<void>((resolve) => {
      let left = 50;
      for (let index = 0; index < 50; index++) {
        setTimeout(() => {
          void engineUnderTest.queue({ name: `burst-${index}`, command: 'true' }).then(() => {
            left -= 1;
            if (left === 0) resolve();
          });
        }, 0);
      }
    });
    await new Promise((resolve) => setImmediate(resolve));
    await until(() => (engine.runs.length >= 50 ? true : undefined));
    // The first call's pass in its turn, one shared by the other 49 at the check phase; then the passes the runs'
    // starts ask for, far fewer than one per call.
    expect(passes).toBeLessThan(10);
  });
});
