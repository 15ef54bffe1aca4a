import { connect, type ClientHttp2Session } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPlatform, type Platform } from '../src';
import { RECEIVE_WINDOW_BYTES } from '../src/server/receive-window';
import { idleProvider } from './idle-provider';
import { until } from './in-process-worker';

// A worker streaming a big log is held back by the server's HTTP/2 receive window; grpc-js has no server
// option for it, so the server widens it through grpc-js internals. This fails if a grpc-js upgrade breaks that.
describe('gRPC server receive window', () => {
  let platform: Platform;
  let session: ClientHttp2Session;
  beforeAll(async () => {
    platform = await createPlatform({ providers: [idleProvider] });
    session = connect(`http://${platform.address}`);
    await new Promise((resolve) => session.once('remoteSettings', resolve));
  });
  afterAll(async () => {
    session.destroy();
    await platform.close();
  });

  it('advertises a wide stream window and raises the connection window to match', async () => {
    expect(session.remoteSettings.initialWindowSize).toBe(RECEIVE_WINDOW_BYTES);
    await until(() => session.state.remoteWindowSize === RECEIVE_WINDOW_BYTES || undefined);
    expect(session.state.remoteWindowSize).toBe(RECEIVE_WINDOW_BYTES);
  });
});
