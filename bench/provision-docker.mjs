#!/usr/bin/env node
// Provision-to-READY: the Docker provider against a raw `docker run --rm --network host IMG node -e 0` of
// the same image, and the process provider against a raw `node -e 0`, in one run. Medians of N runs.
// Usage: node bench/provision-docker.mjs [--runs 5] [--image hodei-worker:local]
// Needs a built tree (npx turbo run build) and a Docker engine with the image (npm run docker:image).
import { execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { createPlatform } from '@hodei/core';
import { ProcessProvider } from '@hodei/provider-process';
import { DockerProvider } from '@hodei/provider-docker';

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '5' }, image: { type: 'string', default: process.env.HODEI_DOCKER_IMAGE || 'hodei-worker:local' } },
});
const runs = Number(values.runs);
const image = values.image;

const median = (samples) => {
  const sorted = [...samples].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

/** Provision-to-READY of one worker: from the engine asking the provider to the worker's registration. */
async function provisionToReady(makeProvider) {
  const platform = await createPlatform({ providers: [makeProvider()] });
  try {
    const job = await platform.client.queue({ name: 'bench', command: 'true' });
    const done = await platform.client.wait(job.id);
    if (done.state !== 'SUCCEEDED') throw new Error(`bench job ${done.state}: ${done.errorMessage}`);
    const events = await platform.store.listAudit(done.workerId);
    const at = (type) => events.find((event) => event.eventType === type)?.occurredAt;
    return at('worker.registered') - at('worker.provisioned');
  } finally {
    await platform.close();
  }
}

function timed(program, args) {
  const started = performance.now();
  execFileSync(program, args, { stdio: 'ignore' });
  return performance.now() - started;
}

async function measure(label, sample) {
  await sample(); // warm-up, not counted
  const samples = [];
  for (let run = 0; run < runs; run += 1) samples.push(await sample());
  const result = median(samples);
  console.log(`${label.padEnd(44)} median ${result.toFixed(0).padStart(5)} ms  (runs: ${samples.map((s) => s.toFixed(0)).join(', ')})`);
  return result;
}

console.log(`provision-to-READY, ${runs} runs each after one warm-up; image ${image}; node ${process.version}`);
const docker = await measure('DockerProvider, queue -> worker READY', () =>
  provisionToReady(() => new DockerProvider({ image, pullPolicy: 'never', maxWorkers: 1, stopTimeoutSeconds: 1 })),
);
const rawDocker = await measure(`raw docker run --rm --network host IMG node -e 0`, () =>
  timed('docker', ['run', '--rm', '--network', 'host', image, 'node', '-e', '0']),
);
const processProvider = await measure('ProcessProvider, queue -> worker READY', () =>
  provisionToReady(() => new ProcessProvider({ maxWorkers: 1 })),
);
const rawNode = await measure('raw node -e 0', () => timed(process.execPath, ['-e', '0']));
console.log('');
console.log(`DockerProvider / raw docker run:   ${(docker / rawDocker).toFixed(2)}x`);
console.log(`ProcessProvider / raw node:         ${(processProvider / rawNode).toFixed(2)}x`);
console.log(`DockerProvider / ProcessProvider:   ${(docker / processProvider).toFixed(2)}x  (the seed claimed 35x)`);
