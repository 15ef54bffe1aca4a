// node bench/logs-follow.mjs [--lines N]: the Hodei half of the logs benchmark alone (no raw pipe baseline): a
// job printing N lines (default 2,000,000) on the embedded platform, followed to the last line by an SDK client.
// Prints wall time, time to the first line and this process's CPU (server, memory store and client; not the
// worker). For alternating builds: its CPU figure is steadier than rates on a shared machine.
import { createPlatform } from '@hodei/core';
import { ProcessProvider } from '@hodei/provider-process';
import { followSeq } from './follow-seq.mjs';
import { numberArgument } from './lib/script.mjs';
import { warmUp } from './lib/warm-up.mjs';
import { workerProfiling } from './worker-profiling.mjs';

const total = numberArgument('--lines', 2_000_000);
const platform = await createPlatform({ providers: [new ProcessProvider({ maxWorkers: 1, ...workerProfiling() })] });
try {
  await warmUp(platform, 1);
  const { ms, firstLineMs, lost, cpuMicros } = await followSeq(platform.client, total);
  const round = Math.round;
  console.log(JSON.stringify({ ms: round(ms), firstLineMs: round(firstLineMs), linesPerSec: round((total / ms) * 1000), lost, cpuMs: round(cpuMicros / 1000) }));
} finally {
  await platform.close();
}
