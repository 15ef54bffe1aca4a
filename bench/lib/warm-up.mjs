// Workers started before a benchmark's clock starts: provisioning is measured by the provision benchmark.

/** Runs `workers` jobs of 0.3 s at once on `platform`, so that as many workers are up and idle afterwards. */
export async function warmUp(platform, workers) {
  const jobs = await Promise.all(Array.from({ length: workers }, () => platform.client.queue({ name: 'warm', command: 'sleep 0.3' })));
  await Promise.all(jobs.map((job) => platform.client.wait(job.id)));
}
