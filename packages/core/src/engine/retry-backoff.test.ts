import { describe, expect, it } from 'vitest';
import { MAX_RETRY_BACKOFF_MS, retryBackoffMs } from './retry-backoff';

describe('retryBackoffMs', () => {
  const middle = () => 0.5;

  it('starts at the base and doubles per attempt', () => {
    expect([1, 2, 3, 4].map((attempt) => retryBackoffMs(attempt, 500, middle))).toEqual([500, 1000, 2000, 4000]);
  });

  it('is capped at 30 s, even for huge attempt numbers', () => {
    expect(retryBackoffMs(7, 500, middle)).toBe(MAX_RETRY_BACKOFF_MS);
    expect(retryBackoffMs(100, 500, middle)).toBe(MAX_RETRY_BACKOFF_MS);
  });

  it('adds at most ±20 % jitter', () => {
    expect(retryBackoffMs(1, 500, () => 0)).toBe(400);
    expect(retryBackoffMs(1, 500, () => 0.999_999)).toBe(600);
    expect(retryBackoffMs(100, 500, () => 0.999_999)).toBe(36_000);
    const samples = Array.from({ length: 200 }, () => retryBackoffMs(2, 50));
    for (const sample of samples) {
      expect(sample).toBeGreaterThanOrEqual(80);
      expect(sample).toBeLessThanOrEqual(120);
    }
    expect(new Set(samples).size).toBeGreaterThan(5);
  });
});
