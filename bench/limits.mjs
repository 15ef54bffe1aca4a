// The physical limits a benchmark compares against, measured in the same run on the same machine.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { percentile } from './lib/stats.mjs';

function run(command, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: 'ignore' });
    child.once('error', reject);
    child.once('exit', resolve);
  });
}

/** `/bin/bash -c true` spawned from Node, `lanes` at a time; returns spawns per second. */
export async function rawSpawnsPerSec(count, lanes) {
  const started = performance.now();
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      for (let index = 0; index < count / lanes; index++) await run('/bin/bash', ['-c', 'true']);
    }),
  );
  return count / ((performance.now() - started) / 1000);
}

/** Node reading `command`'s stdout line by line through a pipe; returns lines per second. */
export async function rawPipeLinesPerSec(command) {
  const started = performance.now();
  const child = spawn('/bin/bash', ['-c', command], { stdio: ['ignore', 'pipe', 'inherit'] });
  let lines = 0;
  for await (const _line of createInterface({ input: child.stdout })) lines += 1;
  return { lines, perSec: lines / ((performance.now() - started) / 1000) };
}

/** Median wall time of `node -e 0`, in ms. */
export async function nodeStartMs(samples) {
  const times = [];
  for (let index = 0; index < samples; index++) {
    const started = performance.now();
    await run(process.execPath, ['-e', '0']);
    times.push(performance.now() - started);
  }
  return percentile(times, 50);
}
