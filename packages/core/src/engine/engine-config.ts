import { invalidArgument } from '../domain/errors';

/** Knobs of the engine: its timings, in milliseconds, and how many jobs a worker may hold beyond its slots (`prefetch`). */
export interface EngineConfig {
  /** A worker without a heartbeat for this long is LOST and never offered work. Default 60 s. */
  heartbeatTimeoutMs: number;
  /** How often workers send heartbeats. Default 5 s, at most a third of the timeout. */
  heartbeatIntervalMs: number;
  /** A worker idle for this long is terminated. Default 5 min. */
  idleTimeoutMs: number;
  /** A worker that has not registered this long after being asked for is reaped. Default 2 min. */
  provisioningTimeoutMs: number;
  /** How long a one-time registration token stays valid. Default 5 min. */
  otpTtlMs: number;
  /** Between SIGTERM and SIGKILL when a job is cancelled. Default 5 s. */
  cancelGraceMs: number;
  /** Base delay before a re-queued job runs again; doubles per attempt, capped at 30 s, ±20 % jitter. Default 500 ms. */
  retryBackoffMs: number;
  /**
   * How often the engine runs a scheduling pass unasked: the fallback for a wake-up it missed (another engine's
   * NOTIFY lost with its connection) and the clock that notices silent workers, idle workers and stranded
   * assignments: a value above the heartbeat timeout delays all of those. Default a quarter of the heartbeat
   * timeout, between 50 ms and 1 s; at most 2,147,483,647 (Node's longest timer).
   */
  pollIntervalMs: number;
  /**
   * How many jobs beyond its slots (its capacity) a worker may hold, waiting on the worker to start as soon as
   * a slot frees, without a round trip to the server: claims of many jobs at once, and no idle slot between a
   * job's end and the next job's start. Only workers that say they can hold jobs (this package's, from the
   * version that has the setting) get any; others are sent no more than their capacity. Integer, default 0
   * (off). The costs, bounded by this number per worker: a worker holds jobs another idle worker could run, a
   * job queued later with a higher priority runs after the jobs already held, and no new worker is started
   * for jobs the prefetch room of the workers takes.
   */
  prefetch: number;
}

/** The defaults {@link resolveEngineConfig} fills in (documented on each field of {@link EngineConfig}). */
export const DEFAULT_ENGINE_CONFIG: EngineConfig = {
  heartbeatTimeoutMs: 60_000,
  heartbeatIntervalMs: 5_000,
  idleTimeoutMs: 300_000,
  provisioningTimeoutMs: 120_000,
  otpTtlMs: 300_000,
  cancelGraceMs: 5_000,
  retryBackoffMs: 500,
  pollIntervalMs: 1_000,
  prefetch: 0,
};

/** The longest delay a Node timer accepts; a longer one fires after 1 ms. */
const MAX_TIMER_MS = 2_147_483_647;

/** The most jobs beyond its slots a worker may hold (`prefetch`): it travels as an int32. */
const MAX_PREFETCH = 100_000;

/**
 * Fills defaults and checks every timing is a positive number of milliseconds and `prefetch` a whole number
 * from 0 to 100,000; throws `INVALID_ARGUMENT` naming the field otherwise.
 */
export function resolveEngineConfig(input: Partial<EngineConfig> = {}): EngineConfig {
  const config = { ...DEFAULT_ENGINE_CONFIG };
  if (input.prefetch !== undefined) {
    const prefetch: unknown = input.prefetch;
    if (typeof prefetch !== 'number' || !Number.isInteger(prefetch) || prefetch < 0 || prefetch > MAX_PREFETCH) {
      throw invalidArgument('prefetch', `must be a whole number of jobs from 0 to ${MAX_PREFETCH}, got ${String(prefetch)}`);
    }
    config.prefetch = prefetch;
  }
  for (const key of Object.keys(DEFAULT_ENGINE_CONFIG) as (keyof EngineConfig)[]) {
    const value = input[key];
    if (value === undefined || key === 'prefetch') continue;
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      throw invalidArgument(key, `must be a positive number of milliseconds, got ${String(value)}`);
    }
    config[key] = value;
  }
  if (config.pollIntervalMs > MAX_TIMER_MS) throw invalidArgument('pollIntervalMs', `must be at most ${MAX_TIMER_MS} ms (Node's longest timer)`);
  if (input.pollIntervalMs === undefined) {
    config.pollIntervalMs = Math.max(50, Math.min(DEFAULT_ENGINE_CONFIG.pollIntervalMs, config.heartbeatTimeoutMs / 4));
  }
  if (input.heartbeatIntervalMs === undefined) {
    // Whole milliseconds: the interval travels as an int64 (a fraction made the Registered message unencodable).
    config.heartbeatIntervalMs = Math.min(DEFAULT_ENGINE_CONFIG.heartbeatIntervalMs, Math.floor(config.heartbeatTimeoutMs / 3));
  } else if (config.heartbeatIntervalMs * 2 > config.heartbeatTimeoutMs) {
    throw invalidArgument('heartbeatIntervalMs', 'must be at most half of heartbeatTimeoutMs');
  }
  return config;
}
