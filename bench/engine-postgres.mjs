#!/usr/bin/env node
// The engine on PostgreSQL with a deep queue: N no-op jobs queued at once through the SDK client, run by W
// process workers of capacity C, through createPlatform + PostgresStore (the whole engine: scheduling passes,
// claims, gRPC, workers, bash). Prints jobs/s from the first queue call to the last job's end, and the same
// run on the memory store for comparison. Not a timed test.
//
//   node bench/engine-postgres.mjs [--jobs 3000] [--workers 2] [--capacity 4]
//   HODEI_BENCH_DATABASE_URL=postgres://... (else a throwaway embedded PostgreSQL)
//
// Needs `npx turbo run build` first.
import { parseArgs } from 'node:util';
import { createPlatform, MemoryStore } from '@hodei/core';
import { ProcessProvider } from '@hodei/provider-process';
import { createPostgresStore } from '@hodei/store-postgres';
import { startDatabase } from '../scripts/throwaway-postgres.mjs';

async function run(store, { jobs, workers, capacity }) {
  const platform = await createPlatform({ store, providers: [new ProcessProvider({ maxWorkers: workers, workerCapacity: capacity })] });
  try {
    // Warm the workers up first: provisioning is measured by the provision benchmark, not here.
    const warm = await Promise.all(Array.from({ length: workers * capacity }, () => platform.client.queue({ name: 'warm', command: 'true' })));
    await Promise.all(warm.map((job) => platform.client.wait(job.id)));
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
    return { jobsPerSec: jobs / (ms / 1000), queuedMs, ms };
  } finally {
    await platform.close();
  }
}

const { values: args } = parseArgs({
  options: { jobs: { type: 'string', default: '3000' }, workers: { type: 'string', default: '2' }, capacity: { type: 'string', default: '4' } },
});
const options = { jobs: Number(args.jobs), workers: Number(args.workers), capacity: Number(args.capacity) };
const database = await startDatabase();
try {
  const store = createPostgresStore({ connectionString: database.url }, { schema: 'bench_engine' });
  const postgres = await run(store, options);
  await store.close();
  const memory = await run(new MemoryStore(), options);
  console.log(`${options.jobs} no-op jobs queued at once, ${options.workers} workers x ${options.capacity} slots`);
  for (const [name, result] of Object.entries({ postgres, memory })) {
    console.log(`${name.padEnd(9)} ${result.jobsPerSec.toFixed(0).padStart(6)} jobs/s (queued in ${(result.queuedMs / 1000).toFixed(2)} s, all done in ${(result.ms / 1000).toFixed(2)} s)`);
  }
  console.log(`postgres / memory: ${(postgres.jobsPerSec / memory.jobsPerSec).toFixed(2)}`);
} finally {
  await database.stop();
}
