import { auditCorrelationHashMigration } from './audit-correlation-hash';
import { derivedAuditEventsMigration } from './derived-audit-events';
import { jobChangesMigration } from './job-changes';
import { jobClaimsMigration } from './job-claims';
import { jobNotBeforeMigration } from './job-not-before';
import { liveJobTablesMigration } from './live-job-tables';
import { statementNotifyMigration } from './statement-notify';

/**
 * The schema's versioned migrations. A migration is never edited once released: change the schema by
 * appending a new one. `sql` receives the quoted schema name every table lives in.
 */
export interface Migration {
  /** Sequence number, from 1; a database records the highest one applied. */
  version: number;
  /** Short description, e.g. `initial`. */
  name: string;
  /** The SQL to run, for the given (already quoted) schema name. */
  sql: (schema: string) => string;
}

/*
 * The state lists below are written out on purpose (a migration must not change when the code does);
 * test/schema.test.ts checks that they equal JOB_STATES and WORKER_STATES from @hodei/core.
 */
const initial = (s: string): string => `
CREATE TABLE ${s}.jobs (
  id                  text PRIMARY KEY,
  insert_seq          bigint GENERATED ALWAYS AS IDENTITY,
  state               text NOT NULL CONSTRAINT jobs_state_check
                        CHECK (state IN ('QUEUED', 'ASSIGNED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'CANCELLED')),
  spec                jsonb NOT NULL,
  priority            integer NOT NULL,
  attempt             integer NOT NULL,
  epoch               integer NOT NULL,
  worker_id           text,
  created_at          timestamptz NOT NULL,
  assigned_at         timestamptz,
  started_at          timestamptz,
  completed_at        timestamptz,
  exit_code           integer,
  signal              text,
  error_message       text,
  failure_reason      text CONSTRAINT jobs_failure_reason_check
                        CHECK (failure_reason IN ('EXIT_CODE', 'WORKER_LOST', 'FAILED_TO_START', 'PROVISIONING_FAILED', 'SHUTDOWN')),
  duration_ms         double precision,
  cancel_requested_at timestamptz,
  log_count           bigint NOT NULL DEFAULT 0
);

-- The queue: only QUEUED rows, in the order they run (priority desc, then oldest).
CREATE INDEX jobs_queue_idx ON ${s}.jobs (priority DESC, created_at ASC, insert_seq ASC) WHERE state = 'QUEUED';
-- Listing newest first, optionally by state.
CREATE INDEX jobs_created_idx ON ${s}.jobs (created_at DESC, insert_seq DESC);
CREATE INDEX jobs_state_created_idx ON ${s}.jobs (state, created_at DESC, insert_seq DESC);

CREATE TABLE ${s}.workers (
  id                 text PRIMARY KEY,
  insert_seq         bigint GENERATED ALWAYS AS IDENTITY,
  provider           text NOT NULL,
  state              text NOT NULL CONSTRAINT workers_state_check
                       CHECK (state IN ('CREATING', 'CONNECTING', 'READY', 'BUSY', 'DRAINING', 'TERMINATING', 'TERMINATED', 'LOST')),
  capacity           integer NOT NULL,
  running_job_ids    text[] NOT NULL DEFAULT '{}',
  labels             jsonb NOT NULL DEFAULT '{}',
  created_at         timestamptz NOT NULL,
  last_heartbeat     timestamptz,
  idle_since         timestamptz,
  session_token_hash text,
  ended_reason       text
);

CREATE INDEX workers_state_idx ON ${s}.workers (state);

CREATE TABLE ${s}.job_logs (
  job_id text NOT NULL REFERENCES ${s}.jobs (id) ON DELETE CASCADE,
  seq    bigint NOT NULL,
  ts     timestamptz NOT NULL,
  stream text NOT NULL CONSTRAINT job_logs_stream_check CHECK (stream IN ('stdout', 'stderr', 'system')),
  text   text NOT NULL,
  PRIMARY KEY (job_id, seq)
);

CREATE TABLE ${s}.audit_logs (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_type     text NOT NULL,
  correlation_id text NOT NULL,
  occurred_at    timestamptz NOT NULL,
  details        jsonb
);

CREATE INDEX audit_logs_correlation_idx ON ${s}.audit_logs (correlation_id, occurred_at, id);

-- One-time tokens: only the hash is ever stored.
CREATE TABLE ${s}.worker_tokens (
  hash       text PRIMARY KEY,
  worker_id  text NOT NULL,
  expires_at timestamptz NOT NULL
);

CREATE INDEX worker_tokens_expires_idx ON ${s}.worker_tokens (expires_at);
`;

/** Every migration of this version of the package, in order; {@link migrate} applies those a database lacks. */
export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'initial', sql: initial },
  jobChangesMigration,
  jobNotBeforeMigration,
  jobClaimsMigration,
  auditCorrelationHashMigration,
  derivedAuditEventsMigration,
  statementNotifyMigration,
  liveJobTablesMigration,
];
