import { once } from 'node:events';
import type { ServerDuplexStream, ServerWritableStream, sendUnaryData, ServerUnaryCall } from '@grpc/grpc-js';
import { isTerminalJobState, JOB_STATES, type Job, type JobState } from '../domain/job';
import { asHodeiError, invalidArgument } from '../domain/errors';
import { KeyWaiter, type JobChange } from '../engine/change-notifier';
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
 * Resolves with the job `waiter` is for once it is terminal, or with undefined once `gone()` says the client
 * went away (whoever sees it go calls `waiter.wake()`). Reads the job only after a change that may be its end
 * (not for new lines, nor for a state that is not terminal), and not when the wake-up handed over the ended job
 * (the engine recorded the end); `known` is what is known of the job before any wake-up: `state` when it is not
 * terminal and the waiter was armed before it could change (no first read), `any` to read it first. It waits on
 * nothing else than the notifier, so a long wait keeps nothing per wake-up, and releases the waiter when it returns.
 */
async function untilTerminal(controller: JobController, waiter: KeyWaiter, gone: () => boolean, known: JobChange = 'any'): Promise<Job | undefined> {
  try {
    let change = known;
    while (!gone()) {
      waiter.arm();
      if (change === 'any') {
        const job = await controller.getJob(waiter.key);
        if (isTerminalJobState(job.state)) return job;
      }
      change = await waiter.wait();
      if (waiter.ended && !gone()) return waiter.ended;
    }
    return undefined;
  } finally {
    waiter.release();
  }
}

/**
 * A waiter for job `id` that `closed` (the call going away: see `whenClosed`) wakes, so that its loop sees the
 * call cancelled and ends; once the loop has released it, the call's end wakes nobody.
 */
function callWaiter(controller: JobController, closed: Promise<void>, id: string): KeyWaiter {
  const waiter = new KeyWaiter(controller.notifier, id);
  void closed.then(() => waiter.wake());
  return waiter;
}

/** The error part of a RunReply. */
function runError(error: unknown): wire.RunError {
  const hodei = asHodeiError(error);
  return { code: hodei.code, message: hodei.message, field: hodei.field ?? '' };
}

/**
 * The Run stream: each request queues a job and is answered once the job is terminal (or with why it was not
 * queued). The client ends the stream when it waits on nothing; then, or when the call breaks, the server ends
 * its side and stops waiting (the jobs go on).
 */
function runStream(controller: JobController, call: ServerDuplexStream<wire.RunRequest, wire.RunReply>): void {
  let over = false;
  /** The runs' waiters on their jobs. */
  const waiters = new Set<KeyWaiter>();
  const finish = () => {
    if (over) return;
    over = true;
    for (const waiter of waiters) waiter.wake();
    if (!call.writableEnded && !call.destroyed) call.end();
  };
  const reply = (message: wire.RunReply) => {
    if (!over && !call.writableEnded && !call.destroyed) call.write(message);
  };
  call.on('data', (request: wire.RunRequest) => {
    void (async () => {
      const { tag } = request;
      let jobId = '';
      let waiter: KeyWaiter | undefined;
      try {
        // Waiting starts before the job is stored: no change to it comes unseen, and the job as queued needs no read.
        const job = await controller.queue(specInputFromWire(request.spec), (id) => {
          waiter = new KeyWaiter(controller.notifier, id);
          waiter.arm();
          waiters.add(waiter);
        });
        jobId = job.id;
        const done = await untilTerminal(controller, waiter!, () => over || call.cancelled, 'state');
        if (done) reply({ tag, job: jobToWire(done), error: undefined, jobId: '' });
      } catch (error) {
        // After the job was queued (the store failed while waiting): its id, so the client need not queue it again.
        reply({ tag, job: undefined, error: runError(error), jobId });
      } finally {
        if (waiter) {
          waiter.release();
          waiters.delete(waiter);
        }
      }
    })();
  });
  call.once('end', finish);
  call.once('cancelled', finish);
  call.once('error', finish);
  call.once('close', finish);
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
      const id = call.request.id;
      // The loop waits on the notifier alone (a long Watch keeps nothing per wake-up): a closed call wakes it.
      const waiter = callWaiter(controller, whenClosed(call), id);
      try {
        let last = '';
        let change: JobChange = 'any';
        while (!call.cancelled) {
          waiter.arm();
          // New log lines alone change nothing Watch sends.
          if (change !== 'logs') {
            const job = waiter.ended ?? (await controller.getJob(id));
            const key = `${job.state}/${job.epoch}/${job.attempt}`;
            if (key !== last) {
              last = key;
              call.write(jobToWire(job));
            }
            if (isTerminalJobState(job.state)) return;
          }
          change = await waiter.wait();
        }
      } finally {
        waiter.release();
      }
    }),

    wait: (call: ServerUnaryCall<wire.GetRequest, wire.Job>, callback: sendUnaryData<wire.Job>) => {
      const id = call.request.id;
      untilTerminal(controller, callWaiter(controller, whenClosed(call), id), () => call.cancelled).then(
        (job) => job && callback(null, jobToWire(job)),
        (error: unknown) => callback(toServiceError(error)),
      );
    },

    run: (call: ServerDuplexStream<wire.RunRequest, wire.RunReply>) => runStream(controller, call),

    logs: streaming(async (call: ServerWritableStream<wire.LogsRequest, wire.LogChunk>) => {
      const { id, follow } = call.request;
      if (call.request.fromSeq < 0) throw invalidArgument('fromSeq', 'must not be negative');
      await controller.getJob(id);
      const closed = whenClosed(call);
      const waiter = callWaiter(controller, closed, id);
      try {
        let next = Math.max(1, call.request.fromSeq);
        while (!call.cancelled) {
          waiter.arm();
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
          await waiter.wait();
        }
      } finally {
        waiter.release();
      }
    }),
  };
}
