import {
  credentials,
  InterceptingCall,
  Metadata,
  status,
  type CallOptions,
  type ChannelCredentials,
  type ClientReadableStream,
  type Interceptor,
  type ServiceError,
} from '@grpc/grpc-js';
import { HodeiError, invalidArgument } from '../domain/errors';
import { isTerminalJobState, type Job, type JobSpecInput, type JobState } from '../domain/job';
import { validateJobSpec } from '../domain/job-spec';
import type { Worker } from '../domain/worker';
import type { LogLine, LogLineBatch } from '../ports/store';
import { unpackLogLineBatch } from '../store/log-line-batch';
import { JobServiceClient } from '../protocol';
import { LineIterator } from './line-iterator';
import { RunStream } from './run-stream';
import type * as wire from '../protocol';
import { fromServiceError } from '../server/status-mapping';
import { CHANNELZ_OFF, MAX_MESSAGE_BYTES } from '../server/grpc-server';
import { pemText, validateAuthToken } from '../server/pem';
import { RECEIVE_WINDOW_BYTES } from '../server/receive-window';
import { jobFromWire, logLineBatchFromWire, specToWire, workerFromWire } from '../server/wire-mapping';

/** How {@link createClient} reaches a server. */
export interface ClientOptions {
  /** host:port of the Hodei server, e.g. `127.0.0.1:50051`. */
  address: string;
  /**
   * Connect over TLS, trusting `ca` (PEM: the CA that signed the server's certificate, or that certificate
   * itself when self-signed). Without it the connection is plaintext.
   */
  tls?: {
    /** The CA certificate to trust, PEM. */
    ca: string | Buffer;
  };
  /** Sent as `authorization: Bearer <authToken>` on every call, for a server started with an auth token. */
  authToken?: string;
  /**
   * How long `queue`, `get`, `list`, `cancel` and `listWorkers` wait for the server's answer before they fail with
   * `UNAVAILABLE` (a server that takes the connection but does not answer: hung, stopped, the wrong port); default
   * 30 s. A `queue` that fails so may still have queued its job (a server riding out a store outage retries the
   * store for up to a minute): its error says so. `wait`, `watch`, `logs` and `run` last as long as their job
   * and have no such bound.
   */
  callTimeoutMs?: number;
}

/** See {@link ClientOptions.callTimeoutMs}. */
const DEFAULT_CALL_TIMEOUT_MS = 30_000;

/** Channel credentials for `options.tls`: TLS trusting its CA, else plaintext. */
function channelCredentials(options: ClientOptions): ChannelCredentials {
  if (options.tls === undefined) return credentials.createInsecure();
  return credentials.createSsl(Buffer.from(pemText(options.tls?.ca, 'tls.ca', 'certificate'), 'utf8'));
}

/** Adds `authorization: Bearer <token>` to every call's metadata. */
function bearerInterceptor(token: string): Interceptor {
  return (callOptions, nextCall) =>
    new InterceptingCall(nextCall(callOptions), {
      start(metadata, listener, next) {
        metadata.set('authorization', `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}

/** Options of {@link HodeiClient.logs}. */
export interface LogsOptions {
  /** Keep streaming until the job ends and its last line was delivered. */
  follow?: boolean;
  /** First line to deliver (lines are numbered from 1). */
  fromSeq?: number;
  /** Aborting it ends the iteration quietly (no error). */
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
  /** Runs in flight, over one Run stream. */
  private readonly runs: RunStream;
  /** The server answered Run with UNIMPLEMENTED (it predates it): `run` queues and waits instead. */
  private serverLacksRun = false;

  constructor(private readonly options: ClientOptions) {
    if (typeof options?.address !== 'string' || !/^[^\s:]+:\d+$/.test(options.address)) {
      throw invalidArgument('address', `"${String(options?.address)}" is not host:port`);
    }
    const token = options.authToken;
    validateAuthToken(token, 'authToken');
    const timeout = options.callTimeoutMs;
    if (timeout !== undefined && !(Number.isFinite(timeout) && timeout > 0)) {
      throw invalidArgument('callTimeoutMs', `must be a positive number of milliseconds, got ${String(timeout)}`);
    }
    this.grpc = new JobServiceClient(options.address, channelCredentials(options), {
      ...CHANNELZ_OFF,
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
      // A follower of a big log in another process than the server waited for a window update every 64 KiB.
      'grpc-node.flow_control_window': RECEIVE_WINDOW_BYTES,
      ...(token ? { interceptors: [bearerInterceptor(token)] } : {}),
    });
    this.runs = new RunStream(() => this.grpc.run(), options.address);
  }

  /**
   * Queues a job; resolves with it in state QUEUED. Invalid specs reject with `INVALID_ARGUMENT` (its `field`
   * names the part, e.g. `spec.timeoutMs`); an unreachable server with `UNAVAILABLE`.
   *
   * @example
   * const job = await client.queue({
   *   name: 'test',
   *   command: 'npm test',
   *   env: { CI: '1', NPM_TOKEN: process.env.NPM_TOKEN! }, // *_TOKEN values are masked in logs
   *   timeoutMs: 10 * 60_000,
   *   maxAttempts: 3,
   * });
   */
  async queue(spec: JobSpecInput): Promise<Job> {
    const checked = validateJobSpec(spec);
    return jobFromWire(
      await this.call(
        (request, metadata, options, done) => this.grpc.queue(request, metadata, options, done),
        { spec: specToWire(checked) },
        // A server riding out a store outage (it retries for up to a minute) may store the job after this answer.
        '; the job may have been queued all the same: look for it (list) before queueing it again',
      ),
    );
  }

  /**
   * The job as it is now; secret env values read `***`. Rejects with `NOT_FOUND` for an unknown id.
   *
   * @example
   * const job = await client.get(id);
   * if (job.state === 'FAILED') console.log(job.failureReason, job.errorMessage);
   */
  async get(id: string): Promise<Job> {
    return jobFromWire(await this.call((request, metadata, options, done) => this.grpc.get(request, metadata, options, done), { id }));
  }

  /**
   * Jobs, newest first: at most `limit` (default 100), optionally only those in one of `states`.
   *
   * @example
   * const running = await client.list({ states: ['QUEUED', 'RUNNING'] });
   */
  async list(filter: { states?: JobState[]; limit?: number } = {}): Promise<Job[]> {
    const response = await this.call<wire.ListRequest, wire.ListResponse>((request, metadata, options, done) => this.grpc.list(request, metadata, options, done), {
      states: filter.states ?? [],
      limit: filter.limit ?? 0,
    });
    return response.jobs.map(jobFromWire);
  }

  /**
   * Cancels a queued or running job; resolves with the job as it is right after the request. A queued job is
   * CANCELLED at once; a running one gets SIGTERM (SIGKILL after `cancelGraceMs`) and ends CANCELLED when it
   * has stopped. Cancelling a finished job changes nothing. Rejects with `NOT_FOUND` for an unknown id.
   *
   * @example
   * await client.cancel(job.id);
   * const final = await client.wait(job.id); // state CANCELLED
   */
  async cancel(id: string): Promise<Job> {
    return jobFromWire(await this.call((request, metadata, options, done) => this.grpc.cancel(request, metadata, options, done), { id }));
  }

  /** Every worker the server knows, in any state, including ended ones. */
  async listWorkers(): Promise<WorkerInfo[]> {
    const response = await this.call<wire.ListWorkersRequest, wire.ListWorkersResponse>(
      (request, metadata, options, done) => this.grpc.listWorkers(request, metadata, options, done),
      {},
    );
    return response.workers.map(workerFromWire);
  }

  /**
   * Yields the job each time its state changes, ending with its terminal state.
   *
   * @example
   * for await (const job of client.watch(id)) console.log(job.state); // QUEUED, ASSIGNED, RUNNING, SUCCEEDED
   */
  async *watch(id: string, options: { signal?: AbortSignal } = {}): AsyncGenerator<Job> {
    this.checkOpen();
    for await (const job of this.stream(this.grpc.watch({ id }), options.signal)) yield jobFromWire(job);
  }

  /**
   * Resolves once the job is terminal (SUCCEEDED, FAILED, TIMED_OUT or CANCELLED); a failed job resolves too,
   * so check `state`. One unary call, no stream. Rejects with `UNAVAILABLE` if the connection ends first or
   * `signal` aborts; pass `signal` to stop waiting.
   *
   * @example
   * const job = await client.wait(id, { signal: AbortSignal.timeout(60_000) });
   * if (job.state !== 'SUCCEEDED') throw new Error(`${job.state}: ${job.errorMessage ?? ''}`);
   */
  async wait(id: string, options: { signal?: AbortSignal } = {}): Promise<Job> {
    this.checkOpen();
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

  /**
   * Queues a job and resolves once it is terminal, like {@link HodeiClient.queue} then {@link HodeiClient.wait},
   * but as one message each way: concurrent runs share one stream to the server (opened by the first, ended
   * once none waits), so a run costs no call of its own. A server older than this gets `queue` and `wait`. A
   * failed job resolves too, so check `state`. Rejects like `queue` for a bad spec; with `UNAVAILABLE` if the
   * connection ends first or `signal` aborts, and then the job may have been queued and go on without a
   * waiter (use `queue` and `wait` to keep its id in hand).
   *
   * @example
   * const job = await client.run({ name: 'build', command: 'make' });
   * if (job.state !== 'SUCCEEDED') throw new Error(`${job.state}: exit code ${job.exitCode ?? '-'}`);
   */
  async run(spec: JobSpecInput, options: { signal?: AbortSignal } = {}): Promise<Job> {
    const wireSpec = specToWire(validateJobSpec(spec));
    this.checkOpen();
    const aborted = () => new HodeiError('UNAVAILABLE', 'the run was aborted; the job may have been queued');
    if (options.signal?.aborted) throw aborted();
    if (!this.serverLacksRun) {
      try {
        const job = jobFromWire(await this.runs.run(wireSpec, options.signal, aborted));
        if (!isTerminalJobState(job.state)) throw new HodeiError('UNAVAILABLE', 'the run ended before the job did');
        return job;
      } catch (error) {
        if (((error as Error).cause as ServiceError | undefined)?.code !== status.UNIMPLEMENTED) throw error;
        this.serverLacksRun = true; // nothing was queued: the server does not know the call
      }
    }
    const queued = await this.queue(spec);
    return this.wait(queued.id, options);
  }

  /**
   * Yields the job's log lines in order; with `follow`, live until the job ends and its last line was
   * delivered. Without `follow` it yields the lines stored so far and ends.
   *
   * @example
   * for await (const line of client.logs(job.id, { follow: true })) {
   *   (line.stream === 'stderr' ? process.stderr : process.stdout).write(line.text + '\n');
   * }
   */
  logs(id: string, options: LogsOptions = {}): AsyncGenerator<LogLine, void, undefined> {
    return new LineIterator(this.packedLogs(id, options));
  }

  /**
   * Like {@link HodeiClient.logs}, a batch of lines at a time (as they arrive, in order): cheaper per line
   * when a job writes a lot.
   *
   * @example
   * for await (const lines of client.logBatches(job.id, { follow: true })) console.log(`${lines.length} more lines`);
   */
  async *logBatches(id: string, options: LogsOptions = {}): AsyncGenerator<LogLine[]> {
    for await (const batch of this.packedLogs(id, options)) yield unpackLogLineBatch(batch);
  }

  /**
   * Like {@link HodeiClient.logBatches}, each batch packed as it travels ({@link LogLineBatch}: the lines'
   * texts in one string, their lengths, timestamp deltas and streams in flat arrays), with no object or
   * string made per line: the cheapest way to copy or scan a big log. `unpackLogLineBatch` turns a batch into
   * lines.
   *
   * @example
   * let bytes = 0;
   * for await (const batch of client.packedLogs(job.id, { follow: true })) bytes += batch.text.length + batch.textLengths.length;
   */
  async *packedLogs(id: string, options: LogsOptions = {}): AsyncGenerator<LogLineBatch, void, undefined> {
    this.checkOpen();
    const call = this.grpc.logs({ id, follow: options.follow ?? false, fromSeq: options.fromSeq ?? 1 });
    for await (const chunk of this.stream(call, options.signal)) yield logLineBatchFromWire(chunk.lines);
  }

  /**
   * Closes the connection; calls in flight are cancelled, and later calls reject with `CLOSED`. Call it when done,
   * or the process may stay alive.
   */
  close(): void {
    this.closed = true;
    this.runs.close();
    this.grpc.close();
  }

  /** Set by `close()`: every call then rejects with `CLOSED` (grpc-js would throw a plain Error). */
  private closed = false;

  private checkOpen(): void {
    if (this.closed) throw new HodeiError('CLOSED', `this client of the Hodei server at ${this.options.address} is closed`);
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

  /**
   * A short unary call, bounded by `callTimeoutMs` (see {@link ClientOptions.callTimeoutMs}); `afterTimeout` is
   * added to the error of a call that ran out of time (what may have happened anyway).
   */
  private call<Request, Response>(
    invoke: (request: Request, metadata: Metadata, options: CallOptions, done: (error: unknown, response?: Response) => void) => void,
    request: Request,
    afterTimeout = '',
  ): Promise<Response> {
    this.checkOpen();
    const timeoutMs = this.options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      invoke(request, new Metadata(), { deadline: Date.now() + timeoutMs }, (error, response) => {
        if (!error) return resolve(response as Response);
        const failure = fromServiceError(error, this.options.address);
        if ((error as { code?: number }).code !== status.DEADLINE_EXCEEDED) return reject(failure);
        reject(new HodeiError('UNAVAILABLE', `no answer from the Hodei server at ${this.options.address} within ${timeoutMs} ms${afterTimeout}`, { cause: error }));
      });
    });
  }
}

/** Connects a client to a running Hodei server. */
export function createClient(options: ClientOptions): HodeiClient {
  return new HodeiClient(options);
}
