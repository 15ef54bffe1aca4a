import { Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { HodeiError } from '../domain/errors';
import type { JobController } from '../engine/job-controller';
import { JobServiceService, WorkerServiceService, type ServerMessage, type WorkerMessage } from '../protocol';
import { createJobService } from './job-service';
import { handleWorkerConnection } from './worker-service';

/** Largest message accepted from a client or worker. */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/** A listening gRPC server, as returned by {@link startGrpcServer}. */
export interface RunningServer {
  /** The port actually bound (useful with port 0). */
  port: number;
  /** Stops accepting calls and resolves once open calls ended; calls still open after 2 s are cut. */
  shutdown(): Promise<void>;
}

/** Serves the client API and the worker protocol on one port. */
export async function startGrpcServer(controller: JobController, host: string, port: number): Promise<RunningServer> {
  const server = new Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  });
  server.addService(WorkerServiceService, {
    connect: (call: ServerDuplexStream<WorkerMessage, ServerMessage>) => handleWorkerConnection(controller, call),
  });
  server.addService(JobServiceService, createJobService(controller));
  const bound = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host}:${port}`, ServerCredentials.createInsecure(), (error, boundPort) =>
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
