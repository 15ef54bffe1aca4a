// The child of raw-dispatch.mjs: a bare worker. On each line from the parent (over loopback TCP) it spawns
// `/bin/bash -c true` as the worker spawns a job (detached, output piped), and once the process exited and its
// pipes closed it answers with how long that took, in ms, measured from the line's arrival.
import { spawn } from 'node:child_process';
import { connect } from 'node:net';

const socket = connect(Number(process.argv[2]), '127.0.0.1');
socket.setNoDelay(true);
let buffered = '';
socket.on('data', (data) => {
  const arrived = performance.now();
  buffered += data;
  const lines = buffered.split('\n');
  buffered = lines.pop() ?? '';
  for (let index = 0; index < lines.length; index++) runOnce(arrived);
});
socket.on('close', () => process.exit(0));

function runOnce(arrived) {
  const child = spawn('/bin/bash', ['-c', 'true'], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let open = 3; // stdout, stderr, exit
  const done = () => {
    if (--open === 0) socket.write(`${performance.now() - arrived}\n`);
  };
  child.stdout.resume().once('close', done);
  child.stderr.resume().once('close', done);
  child.once('exit', done);
}
