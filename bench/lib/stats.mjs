// Order statistics of a benchmark's samples.

/** The `p`-th percentile of `values` by nearest rank (the sample at index ⌊p/100 × n⌋ of the sorted values). */
export function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/**
 * The median of the defined `values` (undefined ones are left out): the middle sample, the upper of the two
 * middle ones for an even count (a sample that was measured, never an average of two); undefined when none is.
 */
export function median(values) {
  return percentile(values.filter((value) => value !== undefined), 50);
}
