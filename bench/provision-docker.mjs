#!/usr/bin/env node
// Provision-to-READY: the Docker provider against a raw `docker run --rm --network host IMG node -e 0` of
// the same image, and the process provider against a raw `node -e 0`, in one run. Medians of N runs.
// Usage: node bench/provision-docker.mjs [--runs 5] [--image hodei-worker:local]
// Needs a built tree (npx turbo run build) and a Docker engine with the image (npm run docker:image).
// bench/run.mjs calls dockerProvision() for the `provision.docker` fields when an engine is reachable.
import { execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { createPlatform } from '@hodei/core';
import { ProcessProvider } from '@hodei/provider-process';
import { DockerProvider } from '@hodei/provider-docker';
import { isMainModule } from './lib/script.mjs';
import { median } from './lib/stats.mjs';

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

async function measure(label, sample, runs, log) {
  await sample(); // warm-up, not counted
  const samples = [];
  for (let run = 0; run < runs; run += 1) samples.push(await sample());
  const result = median(samples);
  log(`${label.padEnd(44)} median ${result.toFixed(0).padStart(5)} ms  (runs: ${samples.map((s) => s.toFixed(0)).join(', ')})`);
  return result;
}

/** True when a Docker engine answers and has `image` (built by `npm run docker:image`). */
export function dockerImageAvailable(image) {
  try {
    execFileSync('docker', ['image', 'inspect', image], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

/**
 * Medians of `runs` provisions (after one warm-up) through the DockerProvider and of raw
 * `docker run --rm --network host IMG node -e 0`: `{ ms, rawMs, ratio }`.
 */
export async function dockerProvision({ runs = 5, image = defaultImage(), log = () => {} } = {}) {
  const ms = await measure('DockerProvider, queue -> worker READY', () =>
    provisionToReady(() => new DockerProvider({ image, pullPolicy: 'never', maxWorkers: 1, stopTimeoutSeconds: 1 })),
  runs, log);
  const rawMs = await measure('raw docker run --rm --network host IMG node -e 0', () =>
    timed('docker', ['run', '--rm', '--network', 'host', image, 'node', '-e', '0']),
  runs, log);
  return { ms, rawMs, ratio: ms / rawMs };
}

function defaultImage() {
  return process.env.HODEI_DOCKER_IMAGE || 'hodei-worker:local';
}

if (isMainModule(import.meta.url)) {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' }, image: { type: 'string', default: defaultImage() } } });
  const runs = Number(values.runs);
  const log = console.log;
  console.log(`provision-to-READY, ${runs} runs each after one warm-up; image ${values.image}; node ${process.version}`);
  const docker = await dockerProvision({ runs, image: values.image, log });
  const processProvider = await measure('ProcessProvider, queue -> worker READY', () => provisionToReady(() => new ProcessProvider({ maxWorkers: 1 })), runs, log);
  const rawNode = await measure('raw node -e 0', () => timed(process.execPath, ['-e', '0']), runs, log);
  console.log('');
  console.log(`DockerProvider / raw docker run:   ${docker.ratio.toFixed(2)}x`);
  console.log(`ProcessProvider / raw node:         ${(processProvider / rawNode).toFixed(2)}x`);
  console.log(`DockerProvider / ProcessProvider:   ${(docker.ms / processProvider).toFixed(2)}x  (the seed claimed 35x)`);
}
