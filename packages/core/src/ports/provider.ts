/** What a provider can do; the scheduler reads this instead of probing for methods. */
export interface ProviderCapabilities {
  /** Most workers alive at once from this provider. */
  maxWorkers: number;
  /** Jobs one worker runs at once. */
  workerCapacity: number;
  /** Labels every worker of this provider carries; jobs select workers by label. */
  labels: Record<string, string>;
}

/** What the engine asks a provider to start: one worker that registers back with these credentials. */
export interface CreateWorkerRequest {
  /** Id the engine assigned to the worker; the worker must register with it. */
  workerId: string;
  /** host:port the worker connects back to. */
  serverAddress: string;
  /** One-time registration token, valid for a few minutes. */
  otp: string;
  /**
   * When the server speaks TLS: the CA certificate (PEM) the worker must trust, to be passed as the worker's
   * `HODEI_TLS_CA` environment variable. Absent for a plaintext server.
   */
  tlsCa?: string;
}

/** A worker that ended on its own (crashed, was killed, exited), reported by {@link Provider.onWorkerExit}. */
export interface WorkerExit {
  /** The worker that ended. */
  workerId: string;
  /** Its exit code, or null when a signal ended it or the code is unknown. */
  exitCode: number | null;
  /** The signal that ended it (e.g. `SIGKILL`), or null. */
  signal: string | null;
  /** Human-readable cause, e.g. `process exited with code 1`. */
  reason: string;
}

/**
 * Starts and stops workers somewhere: local processes, containers, pods.
 * The worker it starts must receive `HODEI_SERVER_ADDRESS`, `HODEI_OTP_TOKEN` and `HODEI_WORKER_ID`.
 */
export interface Provider {
  /** The version of this interface the provider implements; always `'v1'` today. */
  readonly specificationVersion: 'v1';
  /** Unique name among the platform's providers, e.g. `process` or `docker`; recorded on each worker. */
  readonly name: string;
  /** Limits and labels the scheduler plans with. */
  readonly capabilities: ProviderCapabilities;
  /** Resolves once the worker's process or container is started (not yet registered). */
  createWorker(request: CreateWorkerRequest): Promise<void>;
  /** Stops and removes the worker; idempotent, resolves once it is gone. */
  destroyWorker(workerId: string): Promise<void>;
  /** Reports workers that ended outside `destroyWorker`. Returns an unsubscribe function. */
  onWorkerExit(listener: (exit: WorkerExit) => void): () => void;
  /** Stops every worker of this provider; idempotent. */
  close(): Promise<void>;
  /**
   * Optional: removes workers this provider finds (containers, pods) that the store does not know as live,
   * e.g. left behind by a crashed server. Called once at start with the ids the store holds as live.
   */
  reconcile?(liveWorkerIds: string[]): Promise<unknown>;
}
