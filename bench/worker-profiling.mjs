// HODEI_BENCH_WORKER_PROF=DIR node bench/run.mjs ...: the benchmarks' workers run with --cpu-prof and write
// their profiles to DIR (the server's own profile: node --cpu-prof bench/run.mjs).
import { createRequire } from 'node:module';

/** ProcessProvider options that profile the workers when HODEI_BENCH_WORKER_PROF is set; otherwise none. */
export function workerProfiling() {
  const dir = process.env.HODEI_BENCH_WORKER_PROF;
  if (!dir) return {};
  const cli = createRequire(import.meta.url).resolve('@hodei/worker/cli');
  return { workerCommand: [process.execPath, '--cpu-prof', `--cpu-prof-dir=${dir}`, cli] };
}
