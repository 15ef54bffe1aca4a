import { invalidArgument } from '../domain/errors';

/** Timing knobs of the engine, all in milliseconds. */
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
};

/** The longest delay a Node timer accepts; a longer one fires after 1 ms. */
const MAX_TIMER_MS = 2_147_483_647;

/** Fills defaults and checks every value is a positive number of milliseconds. */
export function resolveEngineConfig(input: Partial<EngineConfig> = {}): EngineConfig {
  const config = { ...DEFAULT_ENGINE_CONFIG };
  for (const key of Object.keys(DEFAULT_ENGINE_CONFIG) as (keyof EngineConfig)[]) {
    const value = input[key];
    if (value === undefined) continue;
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
