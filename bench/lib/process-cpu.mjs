// CPU time of other processes, read from /proc (Linux only): a benchmark's workers, reapers or database server.
import { readFileSync } from 'node:fs';

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
  const fields = procStatFields(pid);
  return {
    own: (Number(fields[11]) + Number(fields[12])) * TICK_MS,
    children: (Number(fields[13]) + Number(fields[14])) * TICK_MS,
  };
}
