import { credentials, type ClientReadableStream } from '@grpc/grpc-js';
import { HodeiError, invalidArgument } from '../domain/errors';
import { isTerminalJobState, type Job, type JobSpecInput, type JobState } from '../domain/job';
import { validateJobSpec } from '../domain/job-spec';
import type { Worker } from '../domain/worker';
import type { LogLine } from '../ports/store';
import { JobServiceClient } from '../protocol';
import { LineIterator } from './line-iterator';
import type * as wire from '../protocol';
import { fromServiceError } from '../server/status-mapping';
import { MAX_MESSAGE_BYTES } from '../server/grpc-server';
import { jobFromWire, logLinesFromWire, specToWire, workerFromWire } from '../server/wire-mapping';

export interface ClientOptions {
  /** host:port of the Hodei server, e.g. `127.0.0.1:50051`. */
  address: string;
}

export interface LogsOptions {
  /** Keep streaming until the job ends and its last line was delivered. */
  follow?: boolean;
  /** First line to deliver (lines are numbered from 1). */
  fromSeq?: number;
  signal?: AbortSignal;
}

/** Worker as the client sees it (no credentials). */
export type WorkerInfo = Omit<Worker, 'sessionTokenHash' | 'idleSince'>;

/**
 * The typed client SDK over gRPC.
 *
 * @example
 * const client = createClient({ address: '127.0.0.1:50051' });
 * const job = await client.queue({ name: 'hello', command: 'echo hi' });
 * for await (const line of client.logs(job.id, { follow: true })) console.log(line.text);
 * console.log((await client.wait(job.id)).state);
 */
export class HodeiClient {
  private readonly grpc: JobServiceClient;

  constructor(private readonly options: ClientOptions) {
    if (typeof options?.address !== 'string' || !/^[^\s:]+:\d+$/.test(options.address)) {
      throw invalidArgument('address', `"${String(options?.address)}" is not host:port`);
    }
    this.grpc = new JobServiceClient(options.address, credentials.createInsecure(), {
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    });
  }

  /** Queues a job; resolves with it in state QUEUED. Invalid specs reject with `INVALID_ARGUMENT`. */
  async queue(spec: JobSpecInput): Promise<Job> {
    const checked = validateJobSpec(spec);
    return jobFromWire(await this.call((request, done) => this.grpc.queue(request, done), { spec: specToWire(checked) }));
  }

  async get(id: string): Promise<Job> {
    return jobFromWire(await this.call((request, done) => this.grpc.get(request, done), { id }));
  }

  /** Newest first. */
  async list(filter: { states?: JobState[]; limit?: number } = {}): Promise<Job[]> {
    const response = await this.call<wire.ListRequest, wire.ListResponse>((request, done) => this.grpc.list(request, done), {
      states: filter.states ?? [],
      limit: filter.limit ?? 0,
    });
    return response.jobs.map(jobFromWire);
  }

  /** Cancels a queued or running job; resolves with the job as it is right after the request. */
  async cancel(id: string): Promise<Job> {
    return jobFromWire(await this.call((request, done) => this.grpc.cancel(request, done), { id }));
  }

  async listWorkers(): Promise<WorkerInfo[]> {
    const response = await this.call<wire.ListWorkersRequest, wire.ListWorkersResponse>(
      (request, done) => this.grpc.listWorkers(request, done),
      {},
    );
    return response.workers.map(workerFromWire);
  }

  /** Yields the job each time its state changes, ending with its terminal state. */
  async *watch(id: string, options: { signal?: AbortSignal } = {}): AsyncGenerator<Job> {
    for await (const job of this.stream(this.grpc.watch({ id }), options.signal)) yield jobFromWire(job);
  }

  /** Resolves once the job is terminal (SUCCEEDED, FAILED, TIMED_OUT or CANCELLED): one call, no stream. */
  async wait(id: string, options: { signal?: AbortSignal } = {}): Promise<Job> {
    const aborted = () => new HodeiError('UNAVAILABLE', `the wait for job ${id} was aborted`);
    if (options.signal?.aborted) throw aborted();
    const job = jobFromWire(
      await new Promise<wire.Job>((resolve, reject) => {
        const call = this.grpc.wait({ id }, (error, response) => {
          options.signal?.removeEventListener('abort', abort);
          if (error) reject(options.signal?.aborted ? aborted() : fromServiceError(error, this.options.address));
          else resolve(response);
        });
        const abort = () => call.cancel();
        options.signal?.addEventListener('abort', abort, { once: true });
      }),
    );
    if (!isTerminalJobState(job.state)) throw new HodeiError('UNAVAILABLE', `the wait for job ${id} ended before the job did`);
    return job;
  }

  /** Yields the job's log lines in order; with `follow`, live until the job ends. */
  logs(id: string, options: LogsOptions = {}): AsyncGenerator<LogLine, void, undefined> {
    return new LineIterator(this.logBatches(id, options));
  }

  /**
   * Like {@link HodeiClient.logs}, a batch of lines at a time (as they arrive, in order): cheaper per line
   * when a job writes a lot.
   */
  async *logBatches(id: string, options: LogsOptions = {}): AsyncGenerator<LogLine[]> {
    const call = this.grpc.logs({ id, follow: options.follow ?? false, fromSeq: options.fromSeq ?? 1 });
    for await (const chunk of this.stream(call, options.signal)) yield logLinesFromWire(chunk.lines);
  }

  close(): void {
    this.grpc.close();
  }

  private async *stream<T>(call: ClientReadableStream<T>, signal: AbortSignal | undefined): AsyncGenerator<T> {
    const abort = () => call.cancel();
    signal?.addEventListener('abort', abort, { once: true });
    try {
      for await (const message of call) yield message as T;
    } catch (error) {
      if (signal?.aborted) return;
      throw fromServiceError(error, this.options.address);
    } finally {
      signal?.removeEventListener('abort', abort);
      call.cancel();
    }
  }

  private call<Request, Response>(
    invoke: (request: Request, done: (error: unknown, response?: Response) => void) => void,
    request: Request,
  ): Promise<Response> {
    return new Promise((resolve, reject) => {
      invoke(request, (error, response) => {
        if (error) reject(fromServiceError(error, this.options.address));
        else resolve(response as Response);
      });
    });
  }
}

/** Connects a client to a running Hodei server. */
export function createClient(options: ClientOptions): HodeiClient {
  return new HodeiClient(options);
}
