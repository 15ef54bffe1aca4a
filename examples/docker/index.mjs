// Workers as Docker containers (host networking). Image: HODEI_DOCKER_IMAGE, else hodei-worker:local
// (`npm run docker:image` builds it without any registry). Runs the seed's three jobs.
// With --skip-without-engine (its test script) it exits 0 when no engine is reachable, unless
// HODEI_REQUIRE_DOCKER=1 (as in CI).
import { createPlatform } from '@hodei/core';
import { DockerProvider } from '@hodei/provider-docker';

const provider = new DockerProvider({
  image: process.env.HODEI_DOCKER_IMAGE || 'hodei-worker:local',
  pullPolicy: 'never',
  memory: '256m',
  maxWorkers: 2,
});
try {
  await provider.ping();
} catch (error) {
  const skip = process.argv.includes('--skip-without-engine') && process.env.HODEI_REQUIRE_DOCKER !== '1';
  console.error(`${skip ? 'skipped: ' : ''}${error.message}`);
  process.exit(skip ? 0 : 2);
}

const hodei = await createPlatform({ providers: [provider], idleTimeoutMs: 2_000 });
let failures = 0;
try {
  for (const spec of [
    { name: 'Shell Test', command: "echo 'test' | grep 'test'" },
    { name: 'Pipeline Test', command: 'cat /etc/os-release | grep PRETTY_NAME || echo no os-release' },
    { name: 'Env Test', command: 'echo "worker $HODEI_WORKER_ID, home $HOME"' },
  ]) {
    const job = await hodei.client.queue(spec);
    console.log(`\n== ${spec.name} (${job.id})`);
    for await (const line of hodei.client.logs(job.id, { follow: true })) console.log(`${line.stream.padEnd(6)} | ${line.text}`);
    const done = await hodei.client.wait(job.id);
    console.log(`== ${done.state}, exit code ${done.exitCode}, container hodei-${done.workerId}`);
    if (done.state !== 'SUCCEEDED') failures += 1;
  }
} finally {
  await hodei.close();
}
process.exit(failures === 0 ? 0 : 1);
