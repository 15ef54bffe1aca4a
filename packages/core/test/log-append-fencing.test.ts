import { describe, expect, it } from 'vitest';
import type { NewLogLine } from '../src/ports/store';
import { MemoryStore } from '../src/store/memory-store';
import { exited, startInProcessEngine, until } from './in-process-worker';

/**
 * A store whose next count read (`getJobAndLogCount`, or `appendLogs(jobId, [])` for the engine's fallback when
 * `combinedRead` is false and the store lacks the former) waits until `release()`: a slow store or a retry.
 */
class GatedStore extends MemoryStore {
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;
  gatedReads = 0;
  constructor(combinedRead: boolean) {
    super();
    if (!combinedRead) Object.defineProperty(this, 'getJobAndLogCount', { value: undefined });
  }
  arm(): void {
    this.gate = new Promise((resolve) => (this.open = resolve));
  }
  release(): void {
    this.open?.();
  }
  private async pass(): Promise<void> {
    const gate = this.gate;
    if (!gate) return;
    this.gate = undefined;
    this.gatedReads += 1;
    await gate;
  }
  override async getJobAndLogCount(jobId: string) {
    await this.pass();
    return super.getJobAndLogCount(jobId);
  }
  override async appendLogs(jobId: string, lines: readonly NewLogLine[]): Promise<number> {
    if (lines.length === 0) await this.pass();
    return super.appendLogs(jobId, lines);
  }
}

const line = (text: string): NewLogLine => ({ stream: 'stdout', text, timestamp: Date.now() });

describe('a log batch that waited while its job was re-queued', () => {
  it.each([
    ['its job and line count read at once (Store.getJobAndLogCount)', true],
    ['its line count, then its job (a store without getJobAndLogCount)', false],
  ])('is refused when it reaches the store, and the next attempt keeps its first lines: %s', async (_, combinedRead) => {
    const { controller, store, runs } = await startInProcessEngine({ store: new GatedStore(combinedRead) });
    try {
      const queued = await controller.queue({ name: 'j', command: 'flaky', maxAttempts: 2, retryOnExitCodes: [3] });
      const first = await until(() => runs[0]);
      await controller.jobStarted(first.workerId, queued.id, first.job.epoch);
      // The first run's batch is accepted, then waits on the store (its count read is slow)...
      store.arm();
      const late = controller.appendLogs(first.workerId, queued.id, first.job.epoch, [line('old attempt')], 1);
      await until(() => (store.gatedReads > 0 ? true : undefined));
      // ...while the run ends with a retried exit code and the job is assigned again.
      await controller.jobFinished(first.workerId, queued.id, first.job.epoch, exited(3));
      const second = await until(() => runs[1]);
      expect(second.job.attempt).toBe(2);
      store.release();
      await late;
      const stored = await controller.appendLogs(second.workerId, queued.id, second.job.epoch, [line('new attempt')], second.firstLogSeq);
      expect(stored).toBe(second.firstLogSeq);
      expect((await store.readLogs(queued.id, 1, 100)).map((l) => `${l.seq}:${l.text}`)).toEqual([`${second.firstLogSeq}:new attempt`]);
    } finally {
      await controller.stop();
    }
  }, 20_000);
});
