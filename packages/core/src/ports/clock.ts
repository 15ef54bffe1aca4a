/** Source of the current time; inject a fake one to test timeouts without waiting. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

/** The real clock (`Date.now()`); the default. */
export const systemClock: Clock = { now: () => Date.now() };
