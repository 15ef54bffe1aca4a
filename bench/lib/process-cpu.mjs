// CPU time of other processes, read from /proc (Linux only): a benchmark's workers, reapers or database server.
import { readdirSync, readFileSync } from 'node:fs';

/** Milliseconds per clock tick of the times in /proc/PID/stat (USER_HZ = 100). */
const TICK_MS = 10;

/**
 * The fields of /proc/`pid`/stat after the command name: [0] is the state, [1] the parent pid, [11] to [14]
 * the CPU times. Throws when the process is gone or there is no /proc.
 */
export function procStatFields(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name is in parentheses and may itself hold spaces or parentheses: split after its last one.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/**
 * CPU time of process `pid` so far, in ms: its own (user + system) and its reaped children's. Throws when the
 * process is gone or there is no /proc.
 */
export function processCpuMs(pid) {
  return cpuMsOf(procStatFields(pid));
}

/** The CPU times of /proc/PID/stat `fields` (see procStatFields), in ms: the process's own and its reaped children's. */
function cpuMsOf(fields) {
  return {
    own: (Number(fields[11]) + Number(fields[12])) * TICK_MS,
    children: (Number(fields[13]) + Number(fields[14])) * TICK_MS,
  };
}

/**
 * CPU time used so far by the PostgreSQL server listening on `port`, in ms: the postmaster and its live
 * processes (backends, WAL writer, autovacuum...), plus the exited ones through the postmaster's reaped-children
 * times. NaN when no such server runs here (a remote HODEI_BENCH_DATABASE_URL).
 */
export function postgresServerCpuMs(port) {
  let postmaster;
  const stats = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const fields = procStatFields(entry);
      stats.set(Number(entry), { ppid: Number(fields[1]), ...cpuMsOf(fields) });
      if (!postmaster) {
        const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
        const flag = cmdline.indexOf('-p');
        if (cmdline[0].endsWith('postgres') && flag >= 0 && cmdline[flag + 1] === String(port)) postmaster = Number(entry);
      }
    } catch {
      // a process that ended meanwhile
    }
  }
  if (!postmaster) return Number.NaN;
  const root = stats.get(postmaster);
  let ms = root.own + root.children;
  for (const stat of stats.values()) if (stat.ppid === postmaster) ms += stat.own;
  return ms;
}

/**
 * Runs `body` and adds to what it resolves with the CPU it took, in µs per job over `jobs`: `pgUsPerJob` (the
 * PostgreSQL server of `url`, see postgresServerCpuMs) and `nodeUsPerJob` (this process: the client side).
 */
export async function withCpuPerJob(url, jobs, body) {
  const port = Number(new URL(url).port || 5432);
  const pg0 = postgresServerCpuMs(port);
  const node0 = process.cpuUsage();
  const result = await body();
  const node = process.cpuUsage(node0);
  const pgMs = postgresServerCpuMs(port) - pg0;
  return { ...result, pgUsPerJob: (pgMs * 1000) / jobs, nodeUsPerJob: (node.user + node.system) / jobs };
}
