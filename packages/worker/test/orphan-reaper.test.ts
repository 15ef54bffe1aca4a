import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { OrphanReaper } from '../src/orphan-reaper';
import { isAlive, survivors, waitFor } from './helpers';

const started: number[] = [];

/** A detached process group like a job's: a shell leading `sleep`s, optionally ignoring SIGTERM. */
function startGroup(ignoreTerm = false): number {
  const command = `${ignoreTerm ? "trap '' TERM; " : ''}sleep 1000 & sleep 1000 & wait; wait`;
  const child = spawn('/bin/bash', ['-c', command], { detached: true, stdio: 'ignore' });
  child.unref();
  started.push(child.pid!);
  return child.pid!;
}

afterEach(() => {
  for (const pgid of started.splice(0)) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

describe('OrphanReaper', () => {
  it('kills the groups still recorded when the worker side of its pipe closes, and spares those untracked', async () => {
    const reaper = new OrphanReaper({ graceMs: 300 });
    const [tracked, stubborn, finished] = [startGroup(), startGroup(true), startGroup()];
    reaper.track(tracked);
    reaper.track(stubborn);
    reaper.track(finished);
    reaper.untrack(finished); // a job that ended: its group id may belong to someone else by now
    await waitFor(() => reaper.pid !== undefined, 5_000, 'the sidecar to start');
    expect(isAlive(reaper.pid!)).toBe(true);

    const sidecar = reaper.pid!;
    await reaper.close(5_000); // EOF, as when the worker dies; resolves once the sidecar exited
    expect(await survivors([tracked, stubborn], 10_000)).toEqual([]);
    expect(() => process.kill(sidecar, 0)).toThrow(); // exited and reaped: not even a zombie is left
    expect(isAlive(finished)).toBe(true);
  });

  it('spares a group whose end was recorded along with the next job\'s start', async () => {
    const reaper = new OrphanReaper({ graceMs: 300 });
    const [finished, next] = [startGroup(), startGroup()];
    reaper.track(finished);
    await waitFor(() => reaper.pid !== undefined, 5_000, 'the sidecar to start');
    reaper.untrack(finished); // held back until the next start
    reaper.track(next);
    await reaper.close(5_000);
    expect(await survivors([next], 10_000)).toEqual([]);
    expect(isAlive(finished)).toBe(true);
  });

  it('starts no process for a worker that never ran a job', async () => {
    const reaper = new OrphanReaper();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(reaper.pid).toBeUndefined();
    await reaper.close();
  });

  it('reports once, and lets jobs run, when its shell cannot start', async () => {
    const lines: string[] = [];
    const reaper = new OrphanReaper({ shell: '/nonexistent/sh', log: (line) => lines.push(line) });
    reaper.track(startGroup());
    reaper.track(startGroup());
    await waitFor(() => lines.length > 0, 5_000, 'the report');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('orphan reaper unavailable');
    await reaper.close();
  });
});
