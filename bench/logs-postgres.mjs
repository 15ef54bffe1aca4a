// node bench/logs-postgres.mjs [--lines N] [--rounds R]: a job printing N lines (default 500,000) on a platform
// whose store is PostgresStore (embedded PostgreSQL, or HODEI_BENCH_DATABASE_URL), followed to the last line by
// an SDK client, R rounds (default 3) of two variants in alternation: the store as it is, and the same store
// with its batch log methods hidden (`appendLogBatch`/`readLogBatches`), so the engine unpacks each batch into
// one object per line for `appendLogs` and reads through `readLogs` (what PostgresStore had before).
import { createPlatform } from '@hodei/core';
import { ProcessProvider } from '@hodei/provider-process';
import { followSeq } from './follow-seq.mjs';
import { withPostgresStore } from './lib/postgres-store.mjs';
import { numberArgument } from './lib/script.mjs';
import { median } from './lib/stats.mjs';
import { warmUp } from './lib/warm-up.mjs';

const total = numberArgument('--lines', 500_000);
const rounds = numberArgument('--rounds', 3);
const round = (value, digits = 0) => Number(value.toFixed(digits));

/** The store without its batch log methods: the engine falls back to the per-line ones. */
function perLine(store) {
  return new Proxy(store, {
    get: (target, key) => (key === 'appendLogBatch' || key === 'readLogBatches' ? undefined : Reflect.get(target, key, target)),
  });
}

async function follow(store) {
  const platform = await createPlatform({ store, providers: [new ProcessProvider({ maxWorkers: 1 })] });
  try {
    await warmUp(platform, 1);
    const { jobId, ms, lost, cpuMicros } = await followSeq(platform.client, total);
    // A second reader of the finished job: the read path alone.
    const readStarted = performance.now();
    let read = 0;
    for await (const batch of platform.client.packedLogs(jobId)) read += batch.textLengths.length;
    const readSeconds = (performance.now() - readStarted) / 1000;
    return {
      linesPerSec: round(total / (ms / 1000)),
      lost,
      serverCpuMsPerMLine: round(cpuMicros / 1000 / (total / 1e6)),
      rereadLinesPerSec: round(read / readSeconds),
    };
  } finally {
    await platform.close();
  }
}

await withPostgresStore(async (store) => {
  const results = { batch: [], perLine: [] };
  for (let index = 0; index < rounds; index++) {
    results.perLine.push(await follow(perLine(store)));
    results.batch.push(await follow(store));
    console.log(JSON.stringify({ round: index + 1, perLine: results.perLine.at(-1), batch: results.batch.at(-1) }));
  }
  const summary = (rows) =>
    Object.fromEntries(Object.keys(rows[0]).map((key) => [key, key === 'lost' ? rows.reduce((sum, row) => sum + row.lost, 0) : median(rows.map((row) => row[key]))]));
  console.log(JSON.stringify({ lines: total, rounds, median: { perLine: summary(results.perLine), batch: summary(results.batch) } }));
});
