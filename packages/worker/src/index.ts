/**
 * The Hodei Jobs worker agent: connects to the server, registers with a one-time token, runs shell jobs
 * in their own process groups and streams their output back.
 * @packageDocumentation
 */

/** Starts a worker in this process; see {@link StartWorkerOptions} and {@link WorkerHandle}. */
export { startWorker, EXIT_CODES } from './agent';
/** Options and handle of {@link startWorker}. */
export type { StartWorkerOptions, WorkerHandle } from './agent';
/** Reads and validates the worker's `HODEI_*` environment variables. */
export { readWorkerConfig, WorkerConfigError } from './config';
/** The worker's configuration. */
export type { WorkerConfig, Env } from './config';
/** POSIX shell quoting of job arguments, and the command line a command job runs. */
export { buildCommandLine, shellQuote } from './shell-quote';
/** Runs one job outside an agent (used by the agent; handy in tests and tools). */
export { runJob, JobExecution, DEFAULT_KILL_GRACE_MS, DEFAULT_PIPE_GRACE_MS, DEFAULT_JOB_TIMEOUT_MS } from './job-execution';
/** Options and result of one job. */
export type { JobExecutionOptions, JobResult } from './job-execution';
/** Kills the jobs' process groups when the worker dies, SIGKILL included (one sidecar process per worker). */
export { OrphanReaper, DEFAULT_ORPHAN_GRACE_MS } from './orphan-reaper';
/** Options of {@link OrphanReaper}, and what a job reports its process group to. */
export type { OrphanReaperOptions, ProcessGroupTracker } from './orphan-reaper';
/** Pipe chunks → lines, and lines → sequenced log batches. */
export { LineSplitter, DEFAULT_MAX_LINE_LENGTH, type SplitterSecrets } from './line-splitter';
export { LogBatcher } from './log-batcher';
/** Options and sink of {@link LogBatcher}. */
export type { LogBatcherOptions, LogSink, LineTransform } from './log-batcher';
