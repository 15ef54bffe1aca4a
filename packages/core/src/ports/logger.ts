/** The library is silent unless given a logger; pino's and console's shapes both fit. */
export interface Logger {
  /** Detail useful when debugging the engine. */
  debug(object: Record<string, unknown>, message: string): void;
  /** A normal event worth recording (job queued, worker registered). */
  info(object: Record<string, unknown>, message: string): void;
  /** Something went wrong but the platform recovered (worker lost, job re-queued). */
  warn(object: Record<string, unknown>, message: string): void;
  /** Something went wrong and was not recovered. */
  error(object: Record<string, unknown>, message: string): void;
}

/** A {@link Logger} that drops everything; the default. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
