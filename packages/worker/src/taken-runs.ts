/**
 * The runs (job id and epoch: one lease of a job) a worker took in this process, the newest `limit` of them: a
 * RunJob repeated for one of them is not run again. A server re-sends the RunJobs of its assigned jobs when the
 * worker reconnects (one written just before the stream broke may never have arrived), and the worker may have
 * taken, or even finished, some of them meanwhile. A job given back and assigned again comes with a new epoch.
 */
export class TakenRuns {
  private readonly keys = new Set<string>();

  constructor(private readonly limit = 10_000) {}

  has(jobId: string, epoch: number): boolean {
    return this.keys.has(runKey(jobId, epoch));
  }

  add(jobId: string, epoch: number): void {
    this.keys.add(runKey(jobId, epoch));
    // A Set iterates in insertion order: the oldest go first.
    for (const oldest of this.keys) {
      if (this.keys.size <= this.limit) break;
      this.keys.delete(oldest);
    }
  }
}

function runKey(jobId: string, epoch: number): string {
  return `${epoch}:${jobId}`;
}
