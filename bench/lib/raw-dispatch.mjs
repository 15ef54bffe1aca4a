// The physical limit of queue-to-start: what is left of it without the engine. A bare worker (a child Node
// process, connected over loopback TCP) is sent a line, spawns `/bin/bash -c true` and answers with how long that
// took; the delay is the round trip less that time, which is how the engine dates a short job's start (the
// report's arrival less the run's duration). Two messages across processes and the wake-ups they need: the
// machine's share of the latency benchmark, measured in the same run.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { percentile } from './stats.mjs';

/** A bare worker; `sample()` resolves with one delay in ms (fractional), `close()` stops it. */
export async function startRawDispatch() {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const child = spawn(process.execPath, [new URL('./raw-dispatch-child.mjs', import.meta.url).pathname, String(server.address().port)], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const [socket] = await once(server, 'connection');
  socket.setNoDelay(true);
  let buffered = '';
  let answer;
  socket.on('data', (data) => {
    const arrived = performance.now();
    buffered += data;
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) answer?.(arrived, Number(line));
  });
  return {
    sample() {
      return new Promise((resolve) => {
        const sent = performance.now();
        answer = (arrived, ranMs) => resolve(arrived - sent - ranMs);
        socket.write('go\n');
      });
    },
    async close() {
      socket.end();
      server.close();
      if (child.exitCode === null) await once(child, 'exit');
    },
  };
}

/** `samples` delays of a bare worker (see {@link startRawDispatch}), one after another: p50 and p99, in ms. */
export async function rawQueueToStart(samples) {
  const raw = await startRawDispatch();
  const delays = [];
  try {
    for (let index = 0; index < samples; index++) delays.push(await raw.sample());
  } finally {
    await raw.close();
  }
  return { p50Ms: percentile(delays, 50), p99Ms: percentile(delays, 99) };
}
