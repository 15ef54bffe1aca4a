import { spawn, type ChildProcess } from 'node:child_process';

/** Between SIGTERM and SIGKILL when the reaper kills the jobs of a worker that died. */
export const DEFAULT_ORPHAN_GRACE_MS = 2_000;

/** How long {@link OrphanReaper.close} waits for the sidecar to exit. */
const DEFAULT_CLOSE_WAIT_MS = 1_000;

/** At most this long an ended group's `-` line waits to ride along with the next job's `+` line. */
const UNTRACK_DELAY_MS = 250;

/** Told of each job's process group when the job starts and when it ends. */
export interface ProcessGroupTracker {
  /** A job's process group (its leader's pid) now exists. */
  track(pgid: number): void;
  /** The job is over and its group was killed: forget it. */
  untrack(pgid: number): void;
}

/** How an {@link OrphanReaper} runs. */
export interface OrphanReaperOptions {
  /** Between SIGTERM and SIGKILL to the groups left behind; default 2 s. */
  graceMs?: number;
  /** The POSIX shell that runs the sidecar; default `/bin/sh`. */
  shell?: string;
  /** Where to report that the sidecar could not run (the worker goes on without it). */
  log?: (line: string) => void;
}

/**
 * The sidecar, a POSIX shell loop. Its stdin is a pipe from the worker, which writes `+ PGID` when a job
 * starts and `- PGID` when it ended. EOF on stdin means the worker is gone, however it went (exit, crash,
 * SIGKILL): the kernel closes the pipe. Then every group still recorded gets SIGTERM, and SIGKILL after
 * the grace ($1, in tenths of a second) if any of its processes is still alive. Jobs are process-group
 * leaders (spawned detached), so `kill -SIG -PGID` reaches the whole tree a job did not move out of its group.
 */
const SIDECAR = `
groups=' '
while read -r op pgid; do
  case "$pgid" in ''|*[!0-9]*) continue ;; esac
  case "$op" in
    +) groups="$groups$pgid " ;;
    -) case "$groups" in *" $pgid "*) groups="\${groups%%" $pgid "*} \${groups#*" $pgid "}" ;; esac ;;
  esac
done
[ "$groups" = ' ' ] && exit 0
for pgid in $groups; do kill -TERM -"$pgid" 2>/dev/null; done
tenths=0
while [ "$tenths" -lt "$1" ]; do
  alive=''
  for pgid in $groups; do kill -0 -"$pgid" 2>/dev/null && alive="$alive $pgid"; done
  [ -z "$alive" ] && exit 0
  sleep 0.1
  tenths=$((tenths + 1))
done
for pgid in $groups; do kill -KILL -"$pgid" 2>/dev/null; done
`;

/**
 * Makes sure no job outlives its worker, even a worker killed with SIGKILL: one small sidecar process per
 * worker (a shell loop in its own session) holds the list of the jobs' process groups and kills them when
 * the worker's end of its stdin pipe closes. Costs one write to a pipe per job, no process per job: a job's
 * start is written at once, its end rides along with the next start (or is written 250 ms later), since a
 * group that already ended and is still recorded costs nothing but a failed `kill`. The sidecar starts
 * lazily, just after the first job was spawned (never on the path of the worker's start or of the first
 * job's), so a job killed within that first moment could escape it.
 * When the sidecar cannot run (no shell), the worker runs jobs as before and says so once.
 */
export class OrphanReaper implements ProcessGroupTracker {
  private sidecar: ChildProcess | undefined;
  private readonly pending: string[] = [];
  private starting: NodeJS.Immediate | undefined;
  private untracked = '';
  private untrackTimer: NodeJS.Timeout | undefined;
  private broken = false;
  private closed = false;

  constructor(private readonly options: OrphanReaperOptions = {}) {}

  /** The sidecar's process id once it runs. */
  get pid(): number | undefined {
    return this.sidecar?.pid;
  }

  track(pgid: number): void {
    this.send(`${this.takeUntracked()}+ ${pgid}\n`);
  }

  untrack(pgid: number): void {
    if (this.closed || this.broken) return;
    this.untracked += `- ${pgid}\n`;
    this.untrackTimer ??= setTimeout(() => this.send(this.takeUntracked()), UNTRACK_DELAY_MS).unref();
  }

  /**
   * The worker is stopping: the sidecar kills what is still recorded (normally nothing) and exits. Resolves
   * once it has exited and was reaped, so a worker that stops leaves no process behind (or after `waitMs`).
   */
  close(waitMs = DEFAULT_CLOSE_WAIT_MS): Promise<void> {
    if (!this.closed) {
      this.send(this.takeUntracked());
      this.closed = true;
      if (this.starting) clearImmediate(this.starting);
      this.sidecar?.stdin?.end();
    }
    const sidecar = this.sidecar;
    if (!sidecar || sidecar.exitCode !== null || sidecar.signalCode !== null) return Promise.resolve();
    sidecar.ref(); // the wait must keep the process alive
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        sidecar.off('exit', done);
        sidecar.unref();
        resolve();
      };
      const timer = setTimeout(done, waitMs);
      sidecar.once('exit', done);
    });
  }

  /** The `-` lines not written yet (and no timer for them any more). */
  private takeUntracked(): string {
    if (this.untrackTimer) clearTimeout(this.untrackTimer);
    this.untrackTimer = undefined;
    const lines = this.untracked;
    this.untracked = '';
    return lines;
  }

  private send(line: string): void {
    if (this.closed || this.broken || line === '') return;
    if (this.sidecar) {
      this.sidecar.stdin!.write(line);
      return;
    }
    this.pending.push(line);
    this.starting ??= setImmediate(() => this.start());
  }

  private start(): void {
    this.starting = undefined;
    const shell = this.options.shell ?? '/bin/sh';
    const graceTenths = Math.ceil((this.options.graceMs ?? DEFAULT_ORPHAN_GRACE_MS) / 100);
    const sidecar = spawn(shell, ['-c', SIDECAR, 'hodei-orphan-reaper', String(graceTenths)], {
      detached: true,
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    sidecar.on('error', (error) => this.fail(`cannot start ${shell}: ${error.message}`));
    if (sidecar.pid === undefined) return; // 'error' follows
    this.sidecar = sidecar;
    sidecar.once('exit', (code, signal) => {
      if (!this.closed) this.fail(`it exited (${signal ?? `code ${code}`})`);
    });
    const stdin = sidecar.stdin!;
    stdin.on('error', (error) => this.fail(error.message));
    // Neither keeps the worker alive; the pipe closes when the worker's process ends.
    sidecar.unref();
    (stdin as unknown as { unref?: () => void }).unref?.();
    stdin.write(this.pending.splice(0).join(''));
  }

  private fail(reason: string): void {
    if (this.broken) return;
    this.broken = true;
    this.options.log?.(`orphan reaper unavailable (${reason}): jobs of this worker would outlive a SIGKILL of it`);
  }
}
