import { inject } from 'vitest';
import Docker from 'dockerode';
import type { HodeiClient, LogLine } from '@hodei/core';
import { MANAGED_LABEL, WORKER_ID_LABEL } from '../src';

export const docker = new Docker();
export const image = inject('dockerImage');
/** Docker suites skip only when no engine is reachable (global setup throws instead under HODEI_REQUIRE_DOCKER=1). */
export const noDocker = image === '';

export async function collectLogs(client: HodeiClient, jobId: string): Promise<LogLine[]> {
  const lines: LogLine[] = [];
  for await (const line of client.logs(jobId, { follow: true })) lines.push(line);
  return lines;
}

export function textOf(lines: LogLine[], stream: LogLine['stream']): string[] {
  return lines.filter((line) => line.stream === stream).map((line) => line.text);
}

export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs: number, what = 'a condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Managed containers of a worker (all states). */
export async function containersOf(workerId: string): Promise<Docker.ContainerInfo[]> {
  return docker.listContainers({ all: true, filters: { label: [`${MANAGED_LABEL}=true`, `${WORKER_ID_LABEL}=${workerId}`] } });
}

export async function isRunning(workerId: string): Promise<boolean> {
  return (await containersOf(workerId)).some((info) => info.State === 'running');
}
