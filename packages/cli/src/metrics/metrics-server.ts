import { createServer, type Server } from 'node:http';
import { HodeiError } from '@hodei/core';
import type { Registry } from 'prom-client';

/** Serves the registry as Prometheus text on GET /metrics; resolves once listening. */
export async function startMetricsServer(registry: Registry, host: string, port: number): Promise<{ address: string; close(): Promise<void> }> {
  const server: Server = createServer((request, response) => {
    if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try GET /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (error: unknown) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${String(error)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) =>
      reject(new HodeiError('INVALID_ARGUMENT', `cannot listen on ${host}:${port}: ${error.message}`, { field: '--metrics-port', cause: error })),
    );
    server.listen(port, host, resolve);
  });
  const bound = server.address();
  const actualPort = typeof bound === 'object' && bound ? bound.port : port;
  return {
    address: `${host}:${actualPort}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
