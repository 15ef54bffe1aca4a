import type { HodeiClient, LogLine } from '@hodei/core';

export async function collectLogs(client: HodeiClient, jobId: string): Promise<LogLine[]> {
  const lines: LogLine[] = [];
  for await (const line of client.logs(jobId, { follow: true })) lines.push(line);
  return lines;
}

export const textOf = (lines: LogLine[], stream: LogLine['stream']) =>
  lines.filter((line) => line.stream === stream).map((line) => line.text);

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Waits for the first log line matching `text` and returns it. */
export async function waitForLine(client: HodeiClient, jobId: string, text: string): Promise<LogLine> {
  for await (const line of client.logs(jobId, { follow: true })) if (line.text === text) return line;
  throw new Error(`job ${jobId} ended without printing ${text}`);
}
