// The embedded default: in-memory store + process provider, in this very process.
// Queues the seed's three jobs, streams their logs live, and exits non-zero if one did not succeed.
import { createPlatform } from '@hodei/core';
import { ProcessProvider } from '@hodei/provider-process';

const jobs = [
  { name: 'Shell Test', command: "echo 'test' | grep 'test'" },
  { name: 'Pipeline Test', command: 'cat /etc/os-release | grep PRETTY_NAME' },
  { name: 'Env Test', command: 'echo $HOME' },
];

const hodei = await createPlatform({ providers: [new ProcessProvider({ maxWorkers: 2 })] });
let failures = 0;
try {
  for (const spec of jobs) {
    const job = await hodei.client.queue(spec);
    console.log(`\n== ${spec.name} (${job.id})`);
    for await (const line of hodei.client.logs(job.id, { follow: true })) {
      console.log(`${line.stream.padEnd(6)} | ${line.text}`);
    }
    const done = await hodei.client.wait(job.id);
    console.log(`== ${done.state}, exit code ${done.exitCode}, ${done.durationMs} ms on ${done.workerId}`);
    if (done.state !== 'SUCCEEDED') failures += 1;
  }
} finally {
  await hodei.close();
}
process.exit(failures === 0 ? 0 : 1);
