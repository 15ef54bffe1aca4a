#!/usr/bin/env node
// The engine on PostgreSQL with a deep queue: N no-op jobs queued at once through the SDK client, run by W
// process workers of capacity C, through createPlatform + PostgresStore (the whole engine: scheduling passes,
// claims, gRPC, workers, bash). Prints jobs/s from the first queue call to the last job's end, and the same
// run on the memory store for comparison, with the store calls per job. With --prefetch P (> 0), each store
// runs twice in one invocation: without prefetch, then with each worker holding up to P jobs beyond its slots
// (the engine's `prefetch` setting). Not a timed test.
//
//   node bench/engine-postgres.mjs [--jobs 3000] [--workers 2] [--capacity 4] [--prefetch 0]
//   HODEI_BENCH_DATABASE_URL=postgres://... (else a throwaway embedded PostgreSQL)
//
// Needs `npx turbo run build` first.
import { parseArgs } from 'node:util';
import { createPlatform, MemoryStore } from '@hodei/core';
import { ProcessProvider } from '@hodei/provider-process';
import { createPostgresStore } from '@hodei/store-postgres';
import { startDatabase } from '../scripts/throwaway-postgres.mjs';

/** `store` with a count of calls per method (`counts`), reset by `reset()`. */
function counting(store) {
  const counts = new Map();
  const proxy = new Proxy(store, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if (typeof value !== 'function' || typeof key !== 'string') return value;
      return (...args) => {
        counts.set(key, (counts.get(key) ?? 0) + 1);
        return value.apply(target, args);
      };
    },
  });
  return { store: proxy, counts, reset: () => counts.clear() };
}

async function run(counted, { jobs, workers, capacity, prefetch }) {
  const providers = [new ProcessProvider({ maxWorkers: workers, workerCapacity: capacity })];
  const platform = await createPlatform({ store: counted.store, providers, prefetch });
  try {
    // Warm the workers up first: provisioning is measured by the provision benchmark, not here.
    const warm = await Promise.all(Array.from({ length: workers * capacity }, () => platform.client.queue({ name: 'warm', command: 'true' })));
    await Promise.all(warm.map((job) => platform.client.wait(job.id)));
    counted.reset();
    const started = performance.now();
    const queued = [];
    for (let offset = 0; offset < jobs; offset += 500) {
      queued.push(...(await Promise.all(Array.from({ length: Math.min(500, jobs - offset) }, () => platform.client.queue({ name: 'noop', command: 'true' })))));
    }
    const queuedMs = performance.now() - started;
    const ends = await Promise.all(queued.map((job) => platform.client.wait(job.id)));
    const ms = performance.now() - started;
    const failed = ends.filter((job) => job.state !== 'SUCCEEDED').length;
    if (failed > 0) throw new Error(`${failed} jobs did not succeed`);
    const calls = [...counted.counts].sort(([a], [b]) => a.localeCompare(b)).map(([name, count]) => `${name} ${(count / jobs).toFixed(2)}`);
    return { jobsPerSec: jobs / (ms / 1000), queuedMs, ms, calls };
  } finally {
    await platform.close();
  }
}

const { values: args } = parseArgs({
  options: {
    jobs: { type: 'string', default: '3000' },
    workers: { type: 'string', default: '2' },
    capacity: { type: 'string', default: '4' },
    prefetch: { type: 'string', default: '0' },
  },
});
const options = { jobs: Number(args.jobs), workers: Number(args.workers), capacity: Number(args.capacity) };
const prefetches = Number(args.prefetch) > 0 ? [0, Number(args.prefetch)] : [0];
const database = await startDatabase();
const results = [];
try {
  for (const prefetch of prefetches) {
    const postgres = createPostgresStore({ connectionString: database.url }, { schema: `bench_engine_p${prefetch}` });
    results.push({ name: 'postgres', prefetch, ...(await run(counting(postgres), { ...options, prefetch })) });
    await postgres.close();
  }
  for (const prefetch of prefetches) results.push({ name: 'memory', prefetch, ...(await run(counting(new MemoryStore()), { ...options, prefetch })) });
  console.log(`${options.jobs} no-op jobs queued at once, ${options.workers} workers x ${options.capacity} slots; load average ${(await import('node:os')).loadavg().map((load) => load.toFixed(2)).join(' ')}`);
  for (const result of results) {
    console.log(
      `${result.name.padEnd(9)} prefetch ${String(result.prefetch).padStart(4)} ${result.jobsPerSec.toFixed(0).padStart(6)} jobs/s (queued in ${(result.queuedMs / 1000).toFixed(2)} s, all done in ${(result.ms / 1000).toFixed(2)} s)`,
    );
    console.log(`          store calls per job: ${result.calls.join(', ')}`);
  }
  for (const prefetch of prefetches) {
    const [postgres, memory] = ['postgres', 'memory'].map((name) => results.find((result) => result.name === name && result.prefetch === prefetch));
    console.log(`prefetch ${prefetch}: postgres / memory: ${(postgres.jobsPerSec / memory.jobsPerSec).toFixed(2)}`);
  }
  if (prefetches.length > 1) {
    for (const name of ['postgres', 'memory']) {
      const [off, on] = prefetches.map((prefetch) => results.find((result) => result.name === name && result.prefetch === prefetch));
      console.log(`${name}: prefetch ${prefetches[1]} / prefetch 0: ${(on.jobsPerSec / off.jobsPerSec).toFixed(2)}`);
    }
  }
} finally {
  await database.stop();
}
