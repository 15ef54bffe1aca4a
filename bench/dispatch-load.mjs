// The dispatch benchmark's workload, shared by run.mjs and dispatch-cpu.mjs.

/**
 * `count` no-op jobs (`true`), `lanes` callers each running one and waiting for it; returns jobs per second.
 * Through `client.run` (queue and wait in one call) where the SDK has it, else `queue` then `wait`.
 */
export async function noopJobsPerSec(client, count, lanes) {
  const spec = { name: 'noop', command: 'true' };
  const runOne =
    typeof client.run === 'function' && !process.env.HODEI_BENCH_QUEUE_WAIT
      ? () => client.run(spec)
      : async () => client.wait((await client.queue(spec)).id);
  const started = performance.now();
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      for (let index = 0; index < count / lanes; index++) await runOne();
    }),
  );
  return count / ((performance.now() - started) / 1000);
}
