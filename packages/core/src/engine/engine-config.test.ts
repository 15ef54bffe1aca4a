import { describe, expect, it } from 'vitest';
import { resolveEngineConfig } from './engine-config';

describe('resolveEngineConfig', () => {
  it('derives a whole-millisecond heartbeat interval (it travels as an int64)', () => {
    expect(resolveEngineConfig({ heartbeatTimeoutMs: 1_000 }).heartbeatIntervalMs).toBe(333);
  });

  it('defaults the retry backoff base to 500 ms and accepts another', () => {
    expect(resolveEngineConfig().retryBackoffMs).toBe(500);
    expect(resolveEngineConfig({ retryBackoffMs: 50 }).retryBackoffMs).toBe(50);
    expect(() => resolveEngineConfig({ retryBackoffMs: -1 })).toThrow(/retryBackoffMs/);
  });

  it('derives the poll interval from the heartbeat timeout (50 ms to 1 s) unless given', () => {
    expect(resolveEngineConfig().pollIntervalMs).toBe(1_000);
    expect(resolveEngineConfig({ heartbeatTimeoutMs: 1_000 }).pollIntervalMs).toBe(250);
    expect(resolveEngineConfig({ heartbeatTimeoutMs: 100 }).pollIntervalMs).toBe(50);
    expect(resolveEngineConfig({ pollIntervalMs: 60_000 }).pollIntervalMs).toBe(60_000);
    expect(() => resolveEngineConfig({ pollIntervalMs: 0 })).toThrow(/pollIntervalMs/);
    expect(() => resolveEngineConfig({ pollIntervalMs: 2 ** 31 })).toThrow(/pollIntervalMs: must be at most/);
  });

  it('takes a whole, non-negative prefetch (default 0) and names the field when it is not', () => {
    expect(resolveEngineConfig().prefetch).toBe(0);
    expect(resolveEngineConfig({ prefetch: 500 }).prefetch).toBe(500);
    for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '3' as unknown as number, 100_001]) {
      expect(() => resolveEngineConfig({ prefetch: bad })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', field: 'prefetch' }));
    }
    expect(() => resolveEngineConfig({ prefetch: -1 })).toThrow(/prefetch: must be a whole number of jobs from 0 to 100000, got -1/);
  });
});
