/* global process, console, Buffer, URL, AbortController */
// A host app embedding Hodei: plain node:http, no framework.
//
//   POST /jobs              {"name": "...", "command": "..."}  -> 201 {"id", "state", "events"}
//   GET  /jobs/:id          -> the job as JSON
//   GET  /jobs/:id/events   -> text/event-stream: one unnamed event per log line (data: {seq, stream, text,
//                              timestamp}, id: seq), then an `end` event with the final job; a reconnecting
//                              EventSource resumes after Last-Event-ID
//   GET  /                  -> a small page that posts a job and shows its lines live
//
// Run: npm run build && PORT=3000 npm --workspace examples/http-host start
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';
import { createPlatform, HodeiError } from '@hodei/core';
import { ProcessProvider } from '@hodei/provider-process';

const MAX_BODY_BYTES = 64 * 1024;

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function sendJson(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

async function readJson(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `body is over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (error) {
    throw new HttpError(400, `body is not valid JSON (${error.message}); send {"name": "...", "command": "..."}`);
  }
}

/** The fields this app accepts; everything else about the job (timeout, env...) is left to Hodei's defaults. */
function jobSpecFrom(body) {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new HttpError(400, 'body must be a JSON object: {"name": "...", "command": "..."}');
  }
  for (const field of ['name', 'command']) {
    if (typeof body[field] !== 'string' || body[field].trim() === '') {
      throw new HttpError(400, `${field}: must be a non-empty string`);
    }
  }
  return { name: body.name, command: body.command };
}

function statusOf(error) {
  if (error instanceof HttpError) return error.status;
  if (HodeiError.isInstance(error)) {
    if (error.code === 'INVALID_ARGUMENT') return 400;
    if (error.code === 'NOT_FOUND') return 404;
    if (error.code === 'UNAVAILABLE' || error.code === 'CLOSED') return 503;
  }
  return 500;
}

/** Streams a job's log lines as Server-Sent Events until the job ends, then an `end` event. */
async function streamEvents(hodei, id, req, res) {
  const job = await hodei.client.get(id); // 404 before any header is sent
  const lastEventId = Number.parseInt(req.headers['last-event-id'] ?? '', 10);
  const fromSeq = Number.isInteger(lastEventId) && lastEventId > 0 ? lastEventId + 1 : 1;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  res.write(`retry: 1000\n\n`);
  const abort = new AbortController();
  res.on('close', () => abort.abort());
  for await (const line of hodei.client.logs(job.id, { follow: true, fromSeq, signal: abort.signal })) {
    res.write(`id: ${line.seq}\ndata: ${JSON.stringify(line)}\n\n`);
  }
  if (abort.signal.aborted) return;
  const done = await hodei.client.wait(job.id, { signal: abort.signal });
  res.end(`event: end\ndata: ${JSON.stringify(done)}\n\n`);
}

const PAGE = `<!doctype html>
<meta charset="utf-8"><title>Hodei http-host</title>
<form id="f"><input name="command" value="for i in 1 2 3; do echo line $i; sleep 0.5; done" size="60"> <button>Run</button></form>
<pre id="out"></pre>
<script>
f.onsubmit = async (e) => {
  e.preventDefault();
  out.textContent = '';
  const command = f.command.value;
  const res = await fetch('/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: command, command }) });
  const job = await res.json();
  if (!res.ok) { out.textContent = job.error; return; }
  const events = new EventSource(job.events);
  events.onmessage = (m) => { const l = JSON.parse(m.data); out.textContent += (l.stream === 'stdout' ? '' : l.stream + ': ') + l.text + '\\n'; };
  events.addEventListener('end', (m) => { const j = JSON.parse(m.data); out.textContent += '== ' + j.state + ' (exit ' + j.exitCode + ')\\n'; events.close(); });
};
</script>`;

/**
 * Starts the app: a Hodei platform (in-memory store, local worker processes) and the HTTP server.
 * Resolves once listening; `close()` stops both.
 */
export async function start({ port = 3000, host = '127.0.0.1', maxWorkers = 2 } = {}) {
  const hodei = await createPlatform({ providers: [new ProcessProvider({ maxWorkers })] });
  const server = createServer(async (req, res) => {
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const events = /^\/jobs\/([^/]+)\/events$/.exec(url.pathname);
      const jobPath = /^\/jobs\/([^/]+)$/.exec(url.pathname);
      if (req.method === 'POST' && url.pathname === '/jobs') {
        const job = await hodei.client.queue(jobSpecFrom(await readJson(req)));
        sendJson(res, 201, { id: job.id, state: job.state, events: `/jobs/${encodeURIComponent(job.id)}/events` });
      } else if (req.method === 'GET' && events) {
        await streamEvents(hodei, decodeURIComponent(events[1]), req, res);
      } else if (req.method === 'GET' && jobPath) {
        sendJson(res, 200, await hodei.client.get(decodeURIComponent(jobPath[1])));
      } else if (req.method === 'GET' && url.pathname === '/') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end(PAGE);
      } else {
        sendJson(res, 404, { error: `no route for ${req.method} ${url.pathname}` });
      }
    } catch (error) {
      const status = statusOf(error);
      if (status === 500) console.error(error);
      if (!res.headersSent) sendJson(res, status, { error: error.message });
      else res.end();
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const { port: boundPort } = server.address();
  let closing;
  return {
    url: `http://${host}:${boundPort}`,
    server,
    hodei,
    close: () =>
      (closing ??= (async () => {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
        await hodei.close();
      })()),
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const port = Number(process.env.PORT ?? 3000);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    console.error(`PORT must be 0-65535, got "${process.env.PORT}"`);
    process.exit(2);
  }
  const app = await start({ port, host: process.env.HOST ?? '127.0.0.1' });
  console.log(`http-host listening on ${app.url}`);
  const stop = () => app.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
