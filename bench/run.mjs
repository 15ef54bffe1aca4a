// npm run bench [-- --quick] [-- --only provision,logs]: the benchmarks (all, or those named: dispatch,
// latency, logs, provision, store, memory), a table, and bench/results/latest.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { createPlatform } from '@hodei/core';
import { ProcessProvider } from '@hodei/provider-process';
import { noopJobsPerSec } from './dispatch-load.mjs';
import { followSeq } from './follow-seq.mjs';
import { withPostgresStore } from './lib/postgres-store.mjs';
import { rawQueueToStart } from './lib/raw-dispatch.mjs';
import { percentile } from './lib/stats.mjs';
import { warmUp } from './lib/warm-up.mjs';
import { nodeStartMs, rawPipeLinesPerSec, rawSpawnsPerSec } from './limits.mjs';
import { dockerImageAvailable, dockerProvision } from './provision-docker.mjs';
import { runStoreBench } from './store.mjs';

const quick = process.argv.includes('--quick');
const onlyAt = process.argv.indexOf('--only');
const only = onlyAt >= 0 ? new Set((process.argv[onlyAt + 1] ?? '').split(',')) : undefined;
const round = (value, digits = 2) => Number(value.toFixed(digits));

async function withPlatform(options, use) {
  const { workerProfiling } = await import('./worker-profiling.mjs');
  const platform = await createPlatform({ providers: [new ProcessProvider({ ...options.provider, ...workerProfiling() })], ...options.platform });
  try {
    return await use(platform);
  } finally {
    await platform.close();
  }
}

async function dispatch() {
  const count = quick ? 400 : 2_000;
  const lanes = 2;
  const rawPerSec = await rawSpawnsPerSec(count, lanes);
  const jobsPerSec = await withPlatform({ provider: { maxWorkers: lanes } }, async (platform) => {
    await warmUp(platform, lanes);
    return noopJobsPerSec(platform.client, count, lanes);
  });
  return { jobsPerSec: round(jobsPerSec), rawPerSec: round(rawPerSec), ratio: round(jobsPerSec / rawPerSec) };
}

/** Queue-to-start delays (server clock) of `samples` no-op jobs on one warm idle worker. */
async function queueToStart(platformOptions, samples) {
  return withPlatform({ provider: { maxWorkers: 1 }, platform: platformOptions }, async (platform) => {
    await warmUp(platform, 1);
    const delays = [];
    for (let index = 0; index < samples; index++) {
      const job = await platform.client.queue({ name: 'noop', command: 'true' });
      const done = await platform.client.wait(job.id);
      delays.push(done.startedAt - done.createdAt);
    }
    return { p50Ms: percentile(delays, 50), p99Ms: percentile(delays, 99) };
  });
}

/**
 * Memory store: Hodei's p50/p99, and beside them the physical limit's (`rawP50Ms`, `rawP99Ms`: a bare worker over
 * loopback, see lib/raw-dispatch.mjs), measured just before with as many samples.
 */
async function latency() {
  const samples = quick ? 200 : 1_000;
  const raw = await rawQueueToStart(samples);
  const memory = { ...(await queueToStart({}, samples)), rawP50Ms: round(raw.p50Ms), rawP99Ms: round(raw.p99Ms) };
  return { memory, postgres: await withPostgresStore((store) => queueToStart({ store }, samples)) };
}

async function logs() {
  // The workload (2,000,000 lines) even in quick mode: it takes a few seconds, and at 500,000 lines the
  // job's start and the follow's set-up weigh on the ratio (0.39 against 0.62 at 2,000,000, same build).
  const total = 2_000_000;
  const command = `seq 1 ${total}`;
  const raw = await rawPipeLinesPerSec(command);
  return withPlatform({ provider: { maxWorkers: 1 } }, async (platform) => {
    await warmUp(platform, 1);
    const { ms, lost, cpuMicros } = await followSeq(platform.client, total);
    const linesPerSec = total / (ms / 1000);
    // CPU of this process (server, store and client; not the worker) per million lines: steadier than the
    // rate on a busy machine.
    const serverCpuMsPerMLine = round(cpuMicros / 1000 / (total / 1e6), 0);
    return { linesPerSec: round(linesPerSec), rawLinesPerSec: round(raw.perSec), ratio: round(linesPerSec / raw.perSec), lost, serverCpuMsPerMLine };
  });
}

async function provision() {
  const samples = quick ? 5 : 15;
  // Each sample pairs a raw node start with a cold provision, so a load that comes and goes on a shared
  // machine weighs on both sides of the ratio.
  const nodeTimes = [];
  const times = [];
  for (let index = 0; index < samples; index++) {
    nodeTimes.push(await nodeStartMs(1));
    await withPlatform({ provider: { maxWorkers: 1 } }, async (platform) => {
      const job = await platform.client.queue({ name: 'cold', command: 'true' });
      const done = await platform.client.wait(job.id);
      times.push(done.startedAt - done.createdAt);
    });
  }
  const ms = percentile(times, 50);
  const nodeMs = percentile(nodeTimes, 50);
  const result = { process: { ms: round(ms), nodeStartMs: round(nodeMs), ratio: round(ms / nodeMs) } };
  const image = process.env.HODEI_DOCKER_IMAGE || 'hodei-worker:local';
  if (dockerImageAvailable(image)) {
    const docker = await dockerProvision({ runs: samples, image });
    result.docker = { ms: round(docker.ms), rawMs: round(docker.rawMs), ratio: round(docker.ratio) };
  } else {
    process.stderr.write(`provision: no Docker engine with image ${image} (npm run docker:image); docker fields left out\n`);
  }
  return result;
}

/** PostgresStore against graphile-worker (default and tuned) on one database: see bench/store.mjs. */
async function store() {
  const result = await runStoreBench({ jobs: quick ? 5_000 : 20_000, log: (line) => process.stderr.write(`  ${line}\n`) });
  return {
    hodeiJobsPerSec: round(result.hodeiJobsPerSec),
    graphileJobsPerSec: round(result.graphileJobsPerSec),
    ratio: round(result.ratio),
    prefetch: result.prefetch,
    hodeiDefaultJobsPerSec: round(result.hodeiDefaultJobsPerSec),
    graphileDefaultJobsPerSec: round(result.graphileDefaultJobsPerSec),
    defaultRatio: round(result.defaultRatio),
  };
}

/** Runs `memory` in a fresh process so the RSS is not inflated by the benchmarks before it. */
async function memoryInFreshProcess() {
  const { execFileSync } = await import('node:child_process');
  const args = [new URL(import.meta.url).pathname, '--only-memory', ...(quick ? ['--quick'] : [])];
  return JSON.parse(execFileSync(process.execPath, args, { encoding: 'utf8' }).trim().split('\n').pop());
}

async function memory() {
  const queued = 10_000;
  const workers = quick ? 20 : 50;
  return withPlatform({ provider: { maxWorkers: workers } }, async (platform) => {
    await warmUp(platform, workers);
    for (let index = 0; index < queued; index += 500) {
      await Promise.all(
        Array.from({ length: 500 }, () => platform.client.queue({ name: 'parked', command: 'true', labels: { parked: 'yes' } })),
      );
    }
    global.gc?.();
    return { serverRssMb: round(process.memoryUsage().rss / 1024 / 1024, 1), queuedJobs: queued, connectedWorkers: workers };
  });
}

/** One row per figure: what it is, Hodei's value, the limit measured in the same run, the ratio and the goal. */
function tableRows(results) {
  const rows = [];
  const row = (benchmark, hodei, limit, ratio, goal) => rows.push({ benchmark, hodei, limit, ratio, goal });
  const { dispatch: d, latency: l, logs: g, provision: p, store: s, memory: m } = results;
  if (d) row('dispatch (jobs/s)', d.jobsPerSec, d.rawPerSec, d.ratio, '>= 0.6');
  if (l) row('latency memory p50/p99 (ms)', `${l.memory.p50Ms} / ${l.memory.p99Ms}`, `${l.memory.rawP50Ms} / ${l.memory.rawP99Ms}`, '', 'p50 <= 3, p99 <= 4x p50');
  if (l) row('latency postgres p50/p99 (ms)', `${l.postgres.p50Ms} / ${l.postgres.p99Ms}`, '', '', 'p50 <= 10, p99 <= 4x p50');
  if (g) row(`logs (lines/s, lost ${g.lost})`, g.linesPerSec, g.rawLinesPerSec, g.ratio, '>= 0.4, lost 0');
  if (p) row('provision process (ms)', p.process.ms, p.process.nodeStartMs, p.process.ratio, '<= 2');
  if (p?.docker) row('provision docker (ms)', p.docker.ms, p.docker.rawMs, p.docker.ratio, '');
  if (s) row(`store, prefetch ${s.prefetch} (jobs/s vs graphile tuned)`, s.hodeiJobsPerSec, s.graphileJobsPerSec, s.ratio, '>= 1.0');
  if (s) row('store, default (jobs/s vs graphile default)', s.hodeiDefaultJobsPerSec, s.graphileDefaultJobsPerSec, s.defaultRatio, '');
  if (m) row('memory (server RSS MB)', m.serverRssMb, '', '', '');
  return rows;
}

if (process.argv.includes('--only-memory')) {
  console.log(JSON.stringify(await memory()));
  process.exit(0);
}

const results = { quick, machine: { cpus: (await import('node:os')).cpus().length, node: process.version } };
for (const [name, bench] of Object.entries({ dispatch, latency, logs, provision, store, memory: memoryInFreshProcess })) {
  if (only && !only.has(name)) continue;
  process.stderr.write(`running ${name}...\n`);
  results[name] = await bench();
  process.stderr.write(`${name} ${JSON.stringify(results[name])}\n`);
}
console.table(tableRows(results));
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
const resultsFile = only ? `latest-${[...only].join('-')}.json` : 'latest.json';
writeFileSync(new URL(`./results/${resultsFile}`, import.meta.url), `${JSON.stringify(results, null, 2)}\n`);
