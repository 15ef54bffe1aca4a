import { Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { logLineCount, unpackLogLines, WorkerServiceService, type LogBatch, type LogEntry, type ServerMessage, type WorkerMessage } from '@hodei/core/protocol';

export type Connection = ServerDuplexStream<WorkerMessage, ServerMessage>;
type Payload<C extends string> = Extract<NonNullable<WorkerMessage['payload']>, { $case: C }>['value'];

/** One worker connection as the fake server saw it. */
export class FakeConnection {
  readonly messages: WorkerMessage[] = [];
  ended = false;
  /** Acknowledge log batches and results as they arrive (like a server whose store accepts everything). */
  autoAck = true;
  private readonly waiters = new Set<() => void>();

  constructor(readonly call: Connection) {
    call.on('data', (message: WorkerMessage) => {
      this.messages.push(message);
      if (this.autoAck) this.ack(message);
      this.notify();
    });
    call.on('end', () => {
      this.ended = true;
      this.notify();
      if (!call.writableEnded) call.end(); // like the real server: close our side once the worker closes its
    });
    call.on('error', () => undefined);
  }

  send(payload: ServerMessage['payload']): void {
    this.call.write({ payload });
  }

  /** Acknowledges a log batch or a result. */
  ack(message: WorkerMessage): void {
    const payload = message.payload;
    if (payload?.$case === 'logBatch') {
      const { jobId, epoch, lines } = payload.value;
      this.send({ $case: 'ack', value: { jobId, epoch, logSeq: (lines?.firstSeq ?? 1) + logLineCount(lines) - 1, finished: false } });
    } else if (payload?.$case === 'jobFinished') {
      const { jobId, epoch, lastLogSeq } = payload.value;
      this.send({ $case: 'ack', value: { jobId, epoch, logSeq: lastLogSeq, finished: true } });
    }
  }

  /** The batches of a job that said it started (normally one). */
  starts(jobId: string): LogBatch[] {
    return this.all('logBatch').filter((batch) => batch.jobId === jobId && batch.started);
  }

  /** Payloads of one kind, in arrival order. */
  all<C extends NonNullable<WorkerMessage['payload']>['$case']>(kind: C): Array<Payload<C>> {
    return this.messages.flatMap((message) => (message.payload?.$case === kind ? [message.payload.value as Payload<C>] : []));
  }

  /** Log entries of a job, in arrival order (those a result carries included). */
  logs(jobId: string): LogEntry[] {
    return this.messages.flatMap((message) => {
      const payload = message.payload;
      const carried = payload?.$case === 'logBatch' || payload?.$case === 'jobFinished' ? payload.value : undefined;
      return carried?.jobId === jobId && carried.lines ? unpackLogLines(carried.lines) : [];
    });
  }

  /** Waits until `predicate` holds, re-checked on each message. */
  until(predicate: () => boolean, timeoutMs = 10_000, what = 'a condition'): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!predicate()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out waiting for ${what}`));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}

/** A real grpc-js server implementing WorkerService on 127.0.0.1, with a hook per connection. */
export class FakeServer {
  readonly connections: FakeConnection[] = [];
  private readonly server = new Server();
  private readonly connectionWaiters: Array<(connection: FakeConnection) => void> = [];
  address = '';

  constructor(private readonly onRegister: (connection: FakeConnection, register: Payload<'register'>) => void = acceptRegistration()) {}

  async start(): Promise<this> {
    this.server.addService(WorkerServiceService, {
      connect: (call: Connection) => {
        const connection = new FakeConnection(call);
        this.connections.push(connection);
        void connection.until(() => connection.messages.length > 0).then(() => {
          const first = connection.messages[0]?.payload;
          if (first?.$case === 'register') this.onRegister(connection, first.value);
          for (const waiter of this.connectionWaiters.splice(0)) waiter(connection);
        }, () => undefined);
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
    );
    this.address = `127.0.0.1:${port}`;
    return this;
  }

  /** The next connection that registers. */
  nextConnection(): Promise<FakeConnection> {
    return new Promise((resolve) => this.connectionWaiters.push(resolve));
  }

  /** Simulates a crash: every stream is broken at once. */
  crash(): void {
    this.server.forceShutdown();
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      this.server.tryShutdown(() => resolve());
      setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 500).unref();
    });
  }
}

/**
 * Answers Register with Registered; with `readsJobFinishedLines` as a current server (by default as an older
 * one, to which a worker sends a run's last lines in a LogBatch), granting `prefetch` jobs beyond the worker's
 * capacity (default 0, as a server without prefetch), and with `takesReturnedJobs` as a current server (by
 * default as an older one, to which a worker granted no prefetch cannot give a job back).
 */
export function acceptRegistration(heartbeatIntervalMs = 50, readsJobFinishedLines = false, prefetch = 0, takesReturnedJobs = false) {
  return (connection: FakeConnection) =>
    connection.send({ $case: 'registered', value: { sessionToken: 'session-1', heartbeatIntervalMs, readsJobFinishedLines, prefetch, takesReturnedJobs } });
}
