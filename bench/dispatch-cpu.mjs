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
import { workerProfiling } from './worker-profiling.mjs';

const jobsAt = process.argv.indexOf('--jobs');
const count = jobsAt >= 0 ? Number(process.argv[jobsAt + 1]) : 1_000;
const lanes = 2;
const TICK_MS = 10; // USER_HZ = 100

/** Own CPU and CPU of reaped children of a process, in ms. */
function processCpu(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return { own: (Number(fields[11]) + Number(fields[12])) * TICK_MS, children: (Number(fields[13]) + Number(fields[14])) * TICK_MS };
}

/** Live children of the processes `parents` whose command line contains `marker`. */
function childPids(parents, marker) {
  return readdirSync('/proc').filter((entry) => {
    if (!/^\d+$/.test(entry)) return false;
    try {
      const parent = readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1].split(' ')[1];
      return parents.includes(parent) && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(marker);
    } catch {
      return false; // gone meanwhile
    }
  });
}

const platform = await createPlatform({ providers: [new ProcessProvider({ maxWorkers: lanes, ...workerProfiling() })] });
try {
  const warm = await Promise.all(Array.from({ length: lanes }, () => platform.client.queue({ name: 'warm', command: 'sleep 0.3' })));
  await Promise.all(warm.map((job) => platform.client.wait(job.id)));
  const workers = childPids([String(process.pid)], 'node');
  // Each worker's orphan reaper (a shell loop told of every job's start and end): live, so not in the
  // workers' reaped-children time.
  const reapers = childPids(workers, 'hodei-orphan-reaper');
  const before = workers.map(processCpu);
  const reapersBefore = reapers.map(processCpu);
  const ownBefore = process.cpuUsage();
  const jobsPerSec = await noopJobsPerSec(platform.client, count, lanes);
  const after = workers.map(processCpu);
  const reapersAfter = reapers.map(processCpu);
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
