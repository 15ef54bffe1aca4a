import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The worker image, or '' when no Docker engine is reachable. */
    dockerImage: string;
    /** Why Docker tests are skipped, or '' when they run. */
    dockerUnavailable: string;
  }
}

/**
 * Settings from the environment, else from the marker scripts/ci/start-docker.sh writes (turbo's strict env
 * mode may hide HODEI_REQUIRE_DOCKER and HODEI_DOCKER_IMAGE from test tasks).
 */
function setting(name: 'HODEI_REQUIRE_DOCKER' | 'HODEI_DOCKER_IMAGE'): string {
  if (process.env[name]) return process.env[name]!;
  try {
    const marker = readFileSync(resolve(tmpdir(), 'hodei-docker-ci.env'), 'utf8');
    return marker.split('\n').find((line) => line.startsWith(`${name}=`))?.slice(name.length + 1).trim() ?? '';
  } catch {
    return '';
  }
}

/** Finds the engine and the worker image: HODEI_DOCKER_IMAGE, else builds it with scripts/docker/build-worker-image.sh. */
export default async function setup(project: TestProject): Promise<void> {
  try {
    await new Docker().ping();
  } catch (error) {
    const reason = `no Docker engine reachable: ${(error as Error).message}`;
    if (setting('HODEI_REQUIRE_DOCKER') === '1') throw new Error(`HODEI_REQUIRE_DOCKER=1 but ${reason}`);
    project.provide('dockerImage', '');
    project.provide('dockerUnavailable', reason);
    return;
  }
  let image = setting('HODEI_DOCKER_IMAGE');
  if (!image) {
    const root = resolve(fileURLToPath(import.meta.url), '../../../..');
    const output = execFileSync(resolve(root, 'scripts/docker/build-worker-image.sh'), [], { cwd: root, encoding: 'utf8' });
    image = output.trim().split('\n').pop() ?? '';
  }
  project.provide('dockerImage', image);
  project.provide('dockerUnavailable', '');
}
