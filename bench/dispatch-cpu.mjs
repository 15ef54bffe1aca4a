// node bench/dispatch-cpu.mjs [--jobs N]: where the CPU of the dispatch benchmark goes. Same workload as
// `bench/run.mjs --only dispatch` (no-op jobs through the SDK, memory store, process provider, 2 warm
// workers, 2 lanes), and per job: the CPU of this process (SDK client + server), of the workers, of the
// jobs' own processes (`bash -c true`, reaped by the workers) and of the workers' orphan reapers. Linux only
// (reads /proc).
// HODEI_BENCH_WORKER_PROF=DIR profiles the workers as in run.mjs.
import { readFileSync, readdirSync } from 'node:fs';
import { createPlatform } from '@hodei/core';
import { ProcessProvider } from '@hodei/provider-process';
import { noopJobsPerSec } from './dispatch-load.mjs';
import { procStatFields, processCpuMs } from './lib/process-cpu.mjs';
import { numberArgument } from './lib/script.mjs';
import { warmUp } from './lib/warm-up.mjs';
import { workerProfiling } from './worker-profiling.mjs';

const count = numberArgument('--jobs', 1_000);
const lanes = 2;

/** Live children of the processes `parents` whose command line contains `marker`. */
function childPids(parents, marker) {
  return readdirSync('/proc').filter((entry) => {
    if (!/^\d+$/.test(entry)) return false;
    try {
      const parent = procStatFields(entry)[1];
      return parents.includes(parent) && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(marker);
    } catch {
      return false; // gone meanwhile
    }
  });
}

const platform = await createPlatform({ providers: [new ProcessProvider({ maxWorkers: lanes, ...workerProfiling() })] });
try {
  await warmUp(platform, lanes);
  const workers = childPids([String(process.pid)], 'node');
  // Each worker's orphan reaper (a shell loop told of every job's start and end): live, so not in the
  // workers' reaped-children time.
  const reapers = childPids(workers, 'hodei-orphan-reaper');
  const before = workers.map(processCpuMs);
  const reapersBefore = reapers.map(processCpuMs);
  const ownBefore = process.cpuUsage();
  const jobsPerSec = await noopJobsPerSec(platform.client, count, lanes);
  const after = workers.map(processCpuMs);
  const reapersAfter = reapers.map(processCpuMs);
  const own = process.cpuUsage(ownBefore);
  const sum = (pick) => after.reduce((total, cpu, index) => total + pick(cpu) - pick(before[index]), 0);
  const perJob = (ms) => Number((ms / count).toFixed(2));
  console.log(
    JSON.stringify({
      jobsPerSec: Math.round(jobsPerSec),
      cpuMsPerJob: {
        clientAndServer: perJob((own.user + own.system) / 1000),
        workers: perJob(sum((cpu) => cpu.own)),
        jobProcesses: perJob(sum((cpu) => cpu.children)),
        orphanReapers: perJob(reapersAfter.reduce((total, cpu, index) => total + cpu.own - reapersBefore[index].own, 0)),
      },
    }),
  );
} finally {
  await platform.close();
}
