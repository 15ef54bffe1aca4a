/**
 * Sends `signal` to the whole process group led by `pid` (jobs are spawned detached, so each is the leader
 * of its own group). Returns false when no process of the group is left.
 */
export function signalGroup(pid: number | undefined, signal: NodeJS.Signals): boolean {
  if (pid === undefined || pid <= 0) return false;
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    // ESRCH: the group is gone already. EPERM: not ours to signal (cannot happen for our own children).
    return false;
  }
}

/** Seconds without trailing zeros: 1000 → "1", 1500 → "1.5", 250 → "0.25". */
export function formatSeconds(ms: number): string {
  return String(Number((ms / 1000).toFixed(3)));
}
