// one-off: cold provision with the old (main) worker bin and the new bundled one, alternating, same run
import { createPlatform } from '@hodei/core';
import { ProcessProvider } from '@hodei/provider-process';
import { nodeStartMs, percentile } from './limits.mjs';
const variants = { old: [process.execPath, '/work/main/packages/worker/dist/cli.js'], new: undefined };
const samples = Number(process.argv[2] ?? 15);
const times = { old: [], new: [] };
const nodeMs = await nodeStartMs(samples);
for (let i = 0; i < samples; i++) {
  for (const [name, workerCommand] of Object.entries(variants)) {
    const platform = await createPlatform({ providers: [new ProcessProvider({ maxWorkers: 1, ...(workerCommand ? { workerCommand } : {}) })] });
    try {
      const job = await platform.client.queue({ name: 'cold', command: 'true' });
      const done = await platform.client.wait(job.id);
      times[name].push(done.startedAt - done.createdAt);
    } finally { await platform.close(); }
  }
}
const nodeMs2 = await nodeStartMs(samples);
const out = { nodeStartMs: [nodeMs, nodeMs2] };
for (const name of Object.keys(times)) out[name] = { ms: percentile(times[name], 50), ratio: +(percentile(times[name], 50) / Math.max(nodeMs, nodeMs2)).toFixed(2), ratioMin: +(percentile(times[name], 50) / Math.min(nodeMs, nodeMs2)).toFixed(2) };
console.log(JSON.stringify(out));
