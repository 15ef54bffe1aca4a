import { once } from 'node:events';
import type { ServerWritableStream, sendUnaryData, ServerUnaryCall } from '@grpc/grpc-js';
import { isTerminalJobState, JOB_STATES, type JobState } from '../domain/job';
import { invalidArgument } from '../domain/errors';
import type { JobController } from '../engine/job-controller';
import type { Store } from '../ports/store';
import { splitLogLineBatch } from '../store/log-line-batch';
import type * as wire from '../protocol';
import { toServiceError } from './status-mapping';
import { jobToWire, logLineBatchToWire, logLinesToWire, specInputFromWire, workerToWire } from './wire-mapping';

/** Lines read from the store at a time for the Logs stream. */
const LOG_READ_LINES = 16_384;
/** Text per message of the Logs stream (UTF-16 code units; a longer single line goes alone). */
const LOG_CHUNK_TEXT = 1024 * 1024;

function unary<Request, Response>(handler: (request: Request) => Promise<Response>) {
  return (call: ServerUnaryCall<Request, Response>, callback: sendUnaryData<Response>) => {
    handler(call.request).then(
      (response) => callback(null, response),
      (error: unknown) => callback(toServiceError(error)),
    );
  };
}

function streaming<Request, Response>(handler: (call: ServerWritableStream<Request, Response>) => Promise<void>) {
  return (call: ServerWritableStream<Request, Response>) => {
    handler(call).then(
      () => call.end(),
      (error: unknown) => call.emit('error', toServiceError(error)),
    );
  };
}

/**
 * The next lines of a job's log from `fromSeq` as wire messages of at most {@link LOG_CHUNK_TEXT} of text: the
 * store's batches forwarded as they are when it has `readLogBatches`, else its lines packed.
 */
async function readLogBatches(store: Store, jobId: string, fromSeq: number): Promise<wire.LogLines[]> {
  if (!store.readLogBatches) return logLinesToWire(await store.readLogs(jobId, fromSeq, LOG_READ_LINES), LOG_CHUNK_TEXT);
  const batches = await store.readLogBatches(jobId, fromSeq, LOG_READ_LINES);
  return batches.flatMap((batch) => splitLogLineBatch(batch, LOG_CHUNK_TEXT).map(logLineBatchToWire));
}

function parseStates(states: string[]): JobState[] | undefined {
  if (states.length === 0) return undefined;
  for (const state of states) {
    if (!(JOB_STATES as readonly string[]).includes(state)) {
      throw invalidArgument('states', `"${state}" is not a job state; use one of ${JOB_STATES.join(', ')}`);
    }
  }
  return states as JobState[];
}

/** Resolves once the client went away, so streaming loops stop waiting. */
function whenClosed(call: ServerWritableStream<unknown, unknown> | ServerUnaryCall<unknown, unknown>): Promise<void> {
  return new Promise((resolve) => {
    if (call.cancelled) resolve();
    call.once('cancelled', resolve);
    call.once('close', resolve);
  });
}

/**
 * Answers a unary call with the job `jobId()` resolves to once it is terminal (Wait, and Run after queueing);
 * answers nothing if the client went away first, and the error if `jobId()` or a read fails.
 */
function answerWhenTerminal<Request>(
  controller: JobController,
  call: ServerUnaryCall<Request, wire.Job>,
  callback: sendUnaryData<wire.Job>,
  jobId: () => Promise<string>,
): void {
  const closed = whenClosed(call);
  const untilTerminal = async (): Promise<wire.Job | undefined> => {
    const id = await jobId();
    while (!call.cancelled) {
      const changed = controller.notifier.next(id);
      const job = await controller.getJob(id);
      if (isTerminalJobState(job.state)) return jobToWire(job);
      await Promise.race([changed, closed]);
    }
    return undefined;
  };
  untilTerminal().then(
    (job) => job && callback(null, job),
    (error: unknown) => callback(toServiceError(error)),
  );
}

/** The client API over gRPC: thin over the controller. */
export function createJobService(controller: JobController): wire.JobServiceServer {
  return {
    queue: unary(async (request: wire.QueueRequest) => jobToWire(await controller.queue(specInputFromWire(request.spec)))),
    get: unary(async (request: wire.GetRequest) => jobToWire(await controller.getJob(request.id))),
    list: unary(async (request: wire.ListRequest) => {
      const states = parseStates(request.states);
      if (request.limit < 0) throw invalidArgument('limit', 'must not be negative');
      const jobs = await controller.listJobs({ ...(states ? { states } : {}), limit: request.limit || 100 });
      return { jobs: jobs.map(jobToWire) };
    }),
    cancel: unary(async (request: wire.CancelRequest) => jobToWire(await controller.cancel(request.id))),
    listWorkers: unary(async () => ({ workers: (await controller.listWorkers()).map(workerToWire) })),

    watch: streaming(async (call: ServerWritableStream<wire.GetRequest, wire.Job>) => {
      const closed = whenClosed(call);
      let last = '';
      while (!call.cancelled) {
        const changed = controller.notifier.next(call.request.id);
        const job = await controller.getJob(call.request.id);
        const key = `${job.state}/${job.epoch}/${job.attempt}`;
        if (key !== last) {
          last = key;
          call.write(jobToWire(job));
        }
        if (isTerminalJobState(job.state)) return;
        await Promise.race([changed, closed]);
      }
    }),

    wait: (call: ServerUnaryCall<wire.GetRequest, wire.Job>, callback: sendUnaryData<wire.Job>) => {
      answerWhenTerminal(controller, call, callback, () => Promise.resolve(call.request.id));
    },

    run: (call: ServerUnaryCall<wire.QueueRequest, wire.Job>, callback: sendUnaryData<wire.Job>) => {
      answerWhenTerminal(controller, call, callback, async () => (await controller.queue(specInputFromWire(call.request.spec))).id);
    },

    logs: streaming(async (call: ServerWritableStream<wire.LogsRequest, wire.LogChunk>) => {
      const { id, follow } = call.request;
      if (call.request.fromSeq < 0) throw invalidArgument('fromSeq', 'must not be negative');
      await controller.getJob(id);
      const closed = whenClosed(call);
      let next = Math.max(1, call.request.fromSeq);
      while (!call.cancelled) {
        const changed = controller.notifier.next(id);
        const batches = await readLogBatches(controller.store, id, next);
        if (batches.length > 0) {
          let writable = true;
          for (const batch of batches) writable = call.write({ lines: batch });
          const last = batches[batches.length - 1]!;
          next = last.firstSeq + last.textLengths.length;
          if (!writable) await Promise.race([once(call, 'drain'), closed]);
          continue;
        }
        if (!follow) return;
        const job = await controller.getJob(id);
        if (isTerminalJobState(job.state)) {
          // Lines stored between our read and the state check would otherwise be missed.
          if ((await controller.store.readLogs(id, next, 1)).length === 0) return;
          continue;
        }
        await Promise.race([changed, closed]);
      }
    }),
  };
}
