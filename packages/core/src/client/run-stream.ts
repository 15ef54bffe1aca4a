import type { ClientDuplexStream } from '@grpc/grpc-js';
import { HodeiError, type HodeiErrorCode } from '../domain/errors';
import type * as wire from '../protocol';
import { fromServiceError } from '../server/status-mapping';

interface Waiter {
  resolve: (job: wire.Job) => void;
  reject: (error: unknown) => void;
}

const MAX_TAG = 0xffff_ffff;

/**
 * The client's side of the Run stream: many runs (queue, then wait for the end) over one gRPC stream, so that a
 * run costs a message each way instead of a call. The stream opens with the first run and ends once no run
 * waits (so an idle client holds no call open); a run after that opens a new one. When the stream breaks,
 * every run waiting on it rejects (with the gRPC status mapped to a HodeiError, UNIMPLEMENTED included for a
 * server that predates Run).
 */
export class RunStream {
  private call: ClientDuplexStream<wire.RunRequest, wire.RunReply> | undefined;
  private readonly waiting = new Map<number, Waiter>();
  private lastTag = 0;
  private idleCheck: NodeJS.Immediate | undefined;

  constructor(
    private readonly open: () => ClientDuplexStream<wire.RunRequest, wire.RunReply>,
    private readonly address: string,
  ) {}

  /** Queues the job and resolves with it once terminal; `aborted` makes the error an abort rejects with. */
  run(spec: wire.JobSpec, signal: AbortSignal | undefined, aborted: () => HodeiError): Promise<wire.Job> {
    const call = this.call ?? this.start();
    this.lastTag = (this.lastTag % MAX_TAG) + 1;
    const tag = this.lastTag;
    return new Promise<wire.Job>((resolve, reject) => {
      const abort = () => {
        this.settle(tag);
        reject(aborted());
      };
      signal?.addEventListener('abort', abort, { once: true });
      const done = () => signal?.removeEventListener('abort', abort);
      this.waiting.set(tag, {
        resolve: (job) => {
          done();
          resolve(job);
        },
        reject: (error) => {
          done();
          reject(error);
        },
      });
      call.write({ tag, spec });
    });
  }

  /** Cancels the stream; runs still waiting reject with UNAVAILABLE (their jobs may have been queued). */
  close(): void {
    const call = this.call;
    if (!call) return;
    this.broken(call, new HodeiError('UNAVAILABLE', 'the client was closed while the run waited; the job may have been queued'));
    call.cancel();
  }

  private start(): ClientDuplexStream<wire.RunRequest, wire.RunReply> {
    const call = this.open();
    this.call = call;
    call.on('data', (reply: wire.RunReply) => {
      const waiter = this.settle(reply.tag);
      if (!waiter) return; // aborted meanwhile
      if (reply.job) return waiter.resolve(reply.job);
      const error = reply.error;
      const message = error?.message ?? 'the run failed';
      waiter.reject(
        new HodeiError(
          (error?.code || 'INTERNAL') as HodeiErrorCode,
          reply.jobId ? `job ${reply.jobId} was queued, but waiting for its end failed: ${message}` : message,
          error?.field ? { field: error.field } : {},
        ),
      );
    });
    call.on('error', (error) => this.broken(call, fromServiceError(error, this.address)));
    call.on('end', () => this.broken(call, new HodeiError('UNAVAILABLE', `the server at ${this.address} ended the run stream`)));
    return call;
  }

  /** Forgets a run; once none waits, the stream ends (at the next turn of the event loop, unless a run came). */
  private settle(tag: number): Waiter | undefined {
    const waiter = this.waiting.get(tag);
    this.waiting.delete(tag);
    if (this.waiting.size === 0 && this.call !== undefined) {
      this.idleCheck ??= setImmediate(() => {
        this.idleCheck = undefined;
        if (this.waiting.size > 0 || this.call === undefined) return;
        this.call.end();
        this.call = undefined;
      });
    }
    return waiter;
  }

  private broken(call: ClientDuplexStream<wire.RunRequest, wire.RunReply>, error: HodeiError): void {
    if (call !== this.call) return; // a stream already ended for being idle
    this.call = undefined;
    const waiters = [...this.waiting.values()];
    this.waiting.clear();
    for (const waiter of waiters) waiter.reject(error);
  }
}
