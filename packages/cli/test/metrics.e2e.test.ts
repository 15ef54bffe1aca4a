import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli';
import { startServer, type TestServer } from './helpers/server';

/** The value of one sample line of Prometheus text, e.g. `hodei_jobs_finished_total{state="FAILED"}`. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

describe('hodei server --metrics-port', () => {
  let server: TestServer;
  let metricsUrl: string;

  beforeAll(async () => {
    const port = await freePort();
    server = await startServer(['--metrics-port', String(port)]);
    metricsUrl = `http://127.0.0.1:${port}/metrics`;
  });
  afterAll(async () => {
    const { result } = await server.stop();
    expect(result.code).toBe(0);
  });

  it('counts jobs by state, latency and duration, workers, and log lines after a few jobs', async () => {
    const cli = (args: string[]) => runCli(args, { server: server.address });
    expect((await cli(['job', 'run', '--', 'echo one; echo two'])).code).toBe(0);
    expect((await cli(['job', 'run', '--', 'echo three'])).code).toBe(0);
    expect((await cli(['job', 'run', '--', 'echo four; exit 1'])).code).toBe(1);

    const response = await fetch(metricsUrl);
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(sample(text, 'hodei_jobs_queued_total')).toBe(3);
    expect(sample(text, 'hodei_jobs_finished_total{state="SUCCEEDED"}')).toBe(2);
    expect(sample(text, 'hodei_jobs_finished_total{state="FAILED"}')).toBe(1);
    expect(sample(text, 'hodei_jobs{state="SUCCEEDED"}')).toBe(2);
    expect(sample(text, 'hodei_jobs{state="QUEUED"}')).toBe(0);
    expect(sample(text, 'hodei_job_queue_to_start_seconds_count')).toBe(3);
    expect(sample(text, 'hodei_job_duration_seconds_count{state="SUCCEEDED"}')).toBe(2);
    // 4 output lines plus one `$ command` header line per job.
    expect(sample(text, 'hodei_log_lines_total')).toBe(7);
    expect(sample(text, 'hodei_workers_provisioned_total{provider="process"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'hodei_workers{state="READY",provider="process"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'hodei_provisioning_failures_total')).toBeUndefined();
    expect((await fetch(metricsUrl.replace('/metrics', '/other'))).status).toBe(404);
  });
});

describe('hodei server --metrics-port on a port in use', () => {
  it('exits without ever printing the listening line a script may wait for', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as { port: number };
    try {
      const result = await runCli(['server', '--port', '0', '--metrics-port', String(port)]);
      expect(result.code).not.toBe(0);
      expect(result.stdout).not.toContain('listening');
      expect(result.stderr).toMatch(/^hodei: /);
    } finally {
      taken.close();
    }
  });
});
