/* global process, fetch, URL, TextDecoder */
// Starts the app on port 0, posts jobs, and reads their Server-Sent Events to the end.
import { afterAll as after, beforeAll as before, test } from 'vitest';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { start } from '../index.mjs';

let app;
before(async () => {
  app = await start({ port: 0 });
});
after(() => app?.close());

/** Reads a text/event-stream response to its end; returns [{ event, id, data }]. */
async function readEvents(response) {
  const events = [];
  let buffer = '';
  const decoder = new TextDecoder();
  for await (const chunk of response.body) {
    buffer += decoder.decode(chunk, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) !== -1) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = { event: 'message', id: undefined, data: undefined };
      for (const line of block.split('\n')) {
        const [, field, value] = /^([^:]*):? ?(.*)$/.exec(line);
        if (field === 'event') event.event = value;
        else if (field === 'id') event.id = value;
        else if (field === 'data') event.data = JSON.parse(value);
      }
      if (event.data !== undefined) events.push(event);
    }
  }
  return events;
}

const postJob = (body) =>
  fetch(`${app.url}/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });

test('POST /jobs queues a job and GET /jobs/:id/events streams its lines, then an end event', async () => {
  const posted = await postJob({ name: 'three lines', command: 'for i in 1 2 3; do echo line $i; done; echo oops >&2' });
  assert.equal(posted.status, 201);
  const job = await posted.json();
  assert.match(job.id, /\S/);
  assert.equal(job.events, `/jobs/${encodeURIComponent(job.id)}/events`);

  const response = await fetch(app.url + job.events);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type'), /^text\/event-stream/);
  const events = await readEvents(response);
  const last = events.at(-1);
  assert.equal(last.event, 'end');
  assert.equal(last.data.state, 'SUCCEEDED');
  assert.equal(last.data.exitCode, 0);
  const lines = events.slice(0, -1);
  assert.ok(lines.every((event) => event.event === 'message' && event.id === String(event.data.seq)));
  const text = (stream) => lines.filter((event) => event.data.stream === stream).map((event) => event.data.text);
  assert.deepEqual(text('stdout'), ['line 1', 'line 2', 'line 3']);
  assert.deepEqual(text('stderr'), ['oops']);

  const resumed = await readEvents(await fetch(app.url + job.events, { headers: { 'last-event-id': lines[1].id } }));
  assert.deepEqual(resumed.map((event) => event.id ?? event.event), [...lines.slice(2).map((event) => event.id), 'end']);

  const got = await fetch(`${app.url}/jobs/${encodeURIComponent(job.id)}`);
  assert.equal((await got.json()).state, 'SUCCEEDED');
});

test('lines arrive live, before the job ends', async () => {
  const job = await (await postJob({ name: 'slow', command: 'echo first; sleep 2; echo second' })).json();
  const response = await fetch(app.url + job.events);
  const reader = response.body.getReader();
  const started = Date.now();
  let text = '';
  while (!text.includes('"first"')) text += new TextDecoder().decode((await reader.read()).value);
  assert.ok(Date.now() - started < 1800, 'the first line came before the job ended');
  assert.ok(!text.includes('"second"'));
  await reader.cancel();
});

test('a failing job ends with state FAILED and its exit code', async () => {
  const job = await (await postJob({ name: 'fails', command: 'exit 4' })).json();
  const events = await readEvents(await fetch(app.url + job.events));
  assert.equal(events.at(-1).data.state, 'FAILED');
  assert.equal(events.at(-1).data.exitCode, 4);
});

test('bad requests get a 400 that names the problem', async () => {
  const cases = [
    ['{"name": "x", "command": ', /not valid JSON/],
    ['[1, 2]', /JSON object/],
    [{ command: 'echo hi' }, /^name: /],
    [{ name: 'x' }, /^command: /],
    [{ name: 'x', command: 42 }, /^command: /],
    [{ name: '   ', command: 'true' }, /^name: /],
  ];
  for (const [body, message] of cases) {
    const response = await postJob(body);
    assert.equal(response.status, 400, JSON.stringify(body));
    assert.match((await response.json()).error, message);
  }
});

test('unknown jobs and routes are 404', async () => {
  assert.equal((await fetch(`${app.url}/jobs/no-such-job/events`)).status, 404);
  assert.equal((await fetch(`${app.url}/jobs/no-such-job`)).status, 404);
  assert.equal((await fetch(`${app.url}/nope`)).status, 404);
});

test('npm start: PORT=0 node index.mjs listens, serves the page, and exits cleanly on SIGTERM', async () => {
  const child = spawn(process.execPath, [fileURLToPath(new URL('../index.mjs', import.meta.url))], {
    env: { ...process.env, PORT: '0' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    let out = '';
    child.stdout.setEncoding('utf8');
    const url = await new Promise((resolve, reject) => {
      child.stdout.on('data', (text) => {
        out += text;
        const match = /listening on (http:\/\/\S+)/.exec(out);
        if (match) resolve(match[1]);
      });
      child.once('exit', (code) => reject(new Error(`exited with ${code}: ${out}`)));
    });
    const page = await fetch(url);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /EventSource/);
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    assert.equal(code, 0);
  } finally {
    child.kill('SIGKILL');
  }
});
