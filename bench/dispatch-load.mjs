// The dispatch benchmark's workload, shared by run.mjs and dispatch-cpu.mjs.

/** `count` no-op jobs (`true`), `lanes` callers each queueing one and waiting for it; returns jobs per second. */
export async function noopJobsPerSec(client, count, lanes) {
  const started = performance.now();
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      for (let index = 0; index < count / lanes; index++) {
        const job = await client.queue({ name: 'noop', command: 'true' });
        await client.wait(job.id);
      }
    }),
  );
  return count / ((performance.now() - started) / 1000);
}
