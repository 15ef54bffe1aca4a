/**
 * Hodei Jobs store on PostgreSQL: jobs, workers, logs, one-time tokens (hashed) and audit events, shared by
 * several engines. Tables are created by versioned migrations applied under an advisory lock.
 * @packageDocumentation
 */
export {
  PostgresStore,
  createPostgresStore,
  queuedChannel,
  type PostgresConnection,
  type PostgresStoreOptions,
} from './postgres-store';
export { changedChannel } from './job-changes';
export { migrate, type MigrateOptions, type MigrateResult } from './migrate';
export { MIGRATIONS, type Migration } from './migrations';
