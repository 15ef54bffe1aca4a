// The loop the logs benchmarks time: a job printing `seq 1 total`, followed to its last line by an SDK client.

/**
 * Queues `seq 1 total` through `client` and follows its log to the end. Returns the wall time (ms), the time
 * to its first line, the lines lost or wrong, and this process's CPU (µs) meanwhile.
 */
export async function followSeq(client, total) {
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  const job = await client.queue({ name: 'logs', command: `seq 1 ${total}` });
  let expected = 1;
  let lost = 0;
  let firstLineMs = 0;
  for await (const line of client.logs(job.id, { follow: true })) {
    if (line.stream !== 'stdout') continue;
    if (expected === 1) firstLineMs = performance.now() - started;
    if (line.text !== String(expected)) lost += 1;
    expected += 1;
  }
  const ms = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  return { jobId: job.id, ms, firstLineMs, lost: lost + Math.max(0, total - (expected - 1)), cpuMicros: cpu.user + cpu.system };
}
