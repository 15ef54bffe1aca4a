import type { Http2SecureServer, Http2Server, ServerHttp2Session } from 'node:http2';
import type { Server } from '@grpc/grpc-js';

/**
 * HTTP/2 receive window the server advertises, per stream and per connection: how much a worker may send
 * before the server's event loop has read it. At HTTP/2's default of 64 KiB a worker streaming a big log
 * stops after each 64 KiB and waits for the server to read and grant more (a WINDOW_UPDATE), so it idles
 * whenever the server is busy; with 4 MiB it keeps writing (`bench/RESULTS.md`, logs). What a worker may
 * have unacknowledged is bounded apart from this (its `maxUnackedBytes`). The SDK client asks for the same
 * window for what the server sends it (grpc-js's `grpc-node.flow_control_window` channel option).
 */
export const RECEIVE_WINDOW_BYTES = 4 * 1024 * 1024;

type Http2ServerOfGrpc = Http2Server | Http2SecureServer;

/**
 * Makes `server` advertise a receive window of `bytes` on every HTTP/2 session it accepts (call it before
 * binding). grpc-js 1.14 has no server option for it (its `grpc-node.flow_control_window` is read by
 * channels only, grpc/grpc-node#3058), so this wraps the (internal) method through which it creates its
 * HTTP/2 servers; a grpc-js without that method keeps HTTP/2's default window.
 */
export function widenReceiveWindow(server: Server, bytes: number = RECEIVE_WINDOW_BYTES): void {
  const internals = server as unknown as { createHttp2Server?: (credentials: unknown) => Http2ServerOfGrpc };
  const create = internals.createHttp2Server;
  if (typeof create !== 'function') return;
  internals.createHttp2Server = function (this: unknown, credentials: unknown) {
    const http2Server = create.call(this, credentials);
    // The stream window goes out in the session's first SETTINGS; the connection window is raised per session.
    http2Server.updateSettings({ initialWindowSize: bytes });
    http2Server.on('session', (session: ServerHttp2Session) => session.setLocalWindowSize(bytes));
    return http2Server;
  };
}
