import { Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { HodeiError } from '../domain/errors';
import type { JobController } from '../engine/job-controller';
import { JobServiceService, WorkerServiceService, type ServerMessage, type WorkerMessage } from '../protocol';
import { requireBearerToken } from './bearer-auth';
import { createJobService } from './job-service';
import { widenReceiveWindow } from './receive-window';
import { handleWorkerConnection } from './worker-service';

/** Largest message accepted from a client or worker. */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/**
 * gRPC channel option that turns off channelz, grpc-js's per-call introspection counters (nothing in Hodei
 * exposes the channelz service; the bookkeeping costs CPU on every call). Channels only: a grpc-js 1.14
 * server without channelz no longer tracks its sessions, so its `forceShutdown` would leave them open.
 */
export const CHANNELZ_OFF = { 'grpc.enable_channelz': 0 } as const;

/** A listening gRPC server, as returned by {@link startGrpcServer}. */
export interface RunningServer {
  /** The port actually bound (useful with port 0). */
  port: number;
  /** Stops accepting calls and resolves once open calls ended; calls still open after 2 s are cut. */
  shutdown(): Promise<void>;
}

/** Transport security of the gRPC port; without it the port is plaintext and the client API open. */
export interface ServerSecurity {
  /** TLS: the server's certificate chain and private key, PEM. */
  tls?: {
    /** The server's certificate chain, PEM. */
    cert: Buffer;
    /** Its private key, PEM. */
    key: Buffer;
  };
  /** Clients of the job API must send `authorization: Bearer <authToken>`; workers keep their own tokens. */
  authToken?: string;
}

/** Serves the client API and the worker protocol on one port, with TLS and a client bearer token if given. */
export async function startGrpcServer(
  controller: JobController,
  host: string,
  port: number,
  security: ServerSecurity = {},
): Promise<RunningServer> {
  const server = new Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  });
  widenReceiveWindow(server);
  server.addService(WorkerServiceService, {
    connect: (call: ServerDuplexStream<WorkerMessage, ServerMessage>) => handleWorkerConnection(controller, call),
  });
  const jobService = createJobService(controller);
  server.addService(JobServiceService, security.authToken ? requireBearerToken(jobService, security.authToken) : jobService);
  const credentials = security.tls
    ? ServerCredentials.createSsl(null, [{ cert_chain: security.tls.cert, private_key: security.tls.key }], false)
    : ServerCredentials.createInsecure();
  const bound = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host}:${port}`, credentials, (error, boundPort) =>
      error
        ? reject(new HodeiError('UNAVAILABLE', `cannot listen on ${host}:${port}: ${error.message}`, { field: 'port', cause: error }))
        : resolve(boundPort),
    );
  });
  return {
    port: bound,
    shutdown: () =>
      new Promise<void>((resolve) => {
        const force = setTimeout(() => server.forceShutdown(), 2_000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}
