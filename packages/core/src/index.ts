/**
 * Hodei Jobs core: the engine, the ports adapters implement, the in-memory store, the gRPC server and the
 * typed client SDK.
 * @packageDocumentation
 */
export { HodeiError, invalidArgument, type HodeiErrorCode, type HodeiErrorOptions } from './domain/errors';
export { parseDuration, formatSeconds } from './domain/duration';
export {
  JOB_STATES,
  JOB_TRANSITIONS,
  TERMINAL_JOB_STATES,
  isTerminalJobState,
  type Job,
  type JobSpec,
  type JobSpecInput,
  type JobState,
  type FailureReason,
  type ScriptSpec,
} from './domain/job';
export { validateJobSpec, redactJobSpec, DEFAULT_JOB_TIMEOUT_MS, MAX_JOB_SPEC_BYTES } from './domain/job-spec';
export { WORKER_STATES, WORKER_TRANSITIONS, LIVE_WORKER_STATES, type Worker, type WorkerState } from './domain/worker';
export { canTransition, assertTransition, type TransitionTable } from './domain/state-machine';
export { finalJobPatch, type FinishedReport, type Outcome } from './domain/job-outcome';
export type { Store, JobAndLogCount, WorkersAndQueue, LogLine, NewLogLine, LogLineBatch, NewLogLineBatch, LogStreamName, JobFilter, JobGuard, JobClaim, WorkerGuard, StoredToken, AuditEvent } from './ports/store';
export type { Provider, ProviderCapabilities, CreateWorkerRequest, WorkerExit } from './ports/provider';
export { silentLogger, type Logger } from './ports/logger';
export type { EngineObserver } from './ports/observer';
export { systemClock, type Clock } from './ports/clock';
export { MemoryStore } from './store/memory-store';
export { packLogLineBatch, unpackLogLineBatch, sliceLogLineBatch, logLineBatchCount } from './store/log-line-batch';
export { toAuditEventList } from './store/audit-event-list';
export { decide, isAvailable, labelsMatch, type Decision, type SchedulerSnapshot, type ProviderSlot } from './engine/scheduler';
export { WorkerRegistry, type WorkerRegistryOptions, type Credentials } from './engine/worker-registry';
export { JobController, type JobControllerOptions } from './engine/job-controller';
export { startGrpcServer, type RunningServer, type ServerSecurity } from './server/grpc-server';
export { ChangeNotifier, type JobChange } from './engine/change-notifier';
export type { WorkerChannel, Registration, RegistrationGrant } from './engine/worker-channel';
export { resolveEngineConfig, DEFAULT_ENGINE_CONFIG, type EngineConfig } from './engine/engine-config';
export { retryBackoffMs, MAX_RETRY_BACKOFF_MS } from './engine/retry-backoff';
export { withStoreRetry, type StoreRetryOptions } from './engine/store-retry';
export {
  RetentionSweeper,
  parseRetention,
  DEFAULT_RETENTION_MS,
  RETENTION_BATCH,
  type RetentionSweeperOptions,
} from './engine/retention';
export { HodeiClient, createClient, type ClientOptions, type LogsOptions, type WorkerInfo } from './client/hodei-client';
export { createPlatform, type Platform, type PlatformOptions, type StopOptions, type StopResult } from './platform/create-platform';
