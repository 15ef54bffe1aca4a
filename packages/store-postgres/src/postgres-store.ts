import { createHash } from 'node:crypto';
import pg from 'pg';
import {
  HodeiError,
  isTerminalJobState,
  packLogLineBatch,
  toAuditEventList,
  type AuditEvent,
  type Job,
  type JobState,
  type JobAndLogCount,
  type JobClaim,
  type JobFilter,
  type JobGuard,
  type LogLine,
  type LogLineBatch,
  type NewLogLine,
  type NewLogLineBatch,
  type Store,
  type StoredToken,
  type Worker,
  type WorkerGuard,
  type WorkerState,
  type WorkersAndQueue,
} from '@hodei/core';
import { quoteIdentifier, validateConnectionString, validatePoolSize, validateSchema } from './config';
import { claimJobsSql } from './claim-sql';
import { derivesQueued, proposeElision, type ElisionProposal } from './lifecycle-events';
import { toHodeiError } from './errors';
import { changedChannel, deleteFinishedJobsSql, validateRetentionArguments } from './job-changes';
import { migrate, type MigrateResult } from './migrate';
import { MicroBatcher, roundsByKey, settleEach, type Settled } from './micro-batcher';
import {
  appendAuditsSql,
  appendLogsSql,
  ELISION_ARRAYS,
  insertedAsJsonArray,
  JOB_RETURNED_COLUMNS,
  insertJobsSql,
  liveRowWork,
  shapeKey,
  statementName,
  updateJobsSql,
  type JobUpdateShape,
  type LiveTables,
} from './batch-sql';
import { arrayLiteral, STORE_TYPES, timestamptzText } from './pg-values';
import { liveIdsSql, pruneLiveRowsSql, queueOrder } from './live-rows-sql';
import { appendLogBatchesParams, appendLogBatchesSql, encodeLogBatch, logBatchFromRow, readLogBatchSql, type EncodedLogBatch } from './log-batch-sql';

/** Where the store connects: a URL (the store owns its pool) or a pool you own (the store never ends it). */
export type PostgresConnection = { connectionString: string } | { pool: pg.Pool };

/** Options of {@link PostgresStore}; all optional. */
export interface PostgresStoreOptions {
  /**
   * Connections in the store's own pool; default 10. Ignored when you pass a pool. Concurrent calls share
   * batched statements (see `PostgresStore`), so a few connections serve many callers: more than about
   * twice the server's cores rarely helps.
   */
  poolSize?: number;
  /** The schema the tables live in; default `public`. */
  schema?: string;
  /** Apply migrations before the first query; default true. When false, call `migrate()` yourself. */
  autoMigrate?: boolean;
  /**
   * How often the dedicated LISTEN connection (see `onJobQueued`) is probed with a round trip; a probe that
   * fails or takes longer than this ends the connection and another is opened. Default 5 s.
   */
  listenHealthCheckMs?: number;
}

/** The NOTIFY channel of a schema (at most 63 bytes: long schema names are hashed). */
export function queuedChannel(schema: string): string {
  const plain = `hodei_job_queued_${schema}`;
  return plain.length <= 63 ? plain : `hodei_job_queued_${createHash('sha256').update(schema).digest('hex').slice(0, 32)}`;
}

const LISTEN_BACKOFF_MIN_MS = 100;
const LISTEN_BACKOFF_MAX_MS = 5_000;

type Row = Record<string, unknown>;

const DEFAULT_LIST_LIMIT = 100;

/** A time read from the database as ms since the epoch: a number (the store's queries, see STORE_TYPES), a `Date` or JSON text. */
function ms(value: unknown): number {
  if (typeof value === 'number') return value;
  return value instanceof Date ? value.getTime() : new Date(value as string).getTime();
}

function optionalMs(value: unknown): number | undefined {
  return value === null || value === undefined ? undefined : ms(value);
}

function optional<T>(value: unknown): T | undefined {
  return value === null || value === undefined ? undefined : (value as T);
}

function timestamp(value: number | undefined): Date | null {
  return value === undefined ? null : new Date(value);
}

/** A job time as the text of an array element (the job fields travel in the batched statements' arrays). */
function timestampText(value: number | undefined): string | null {
  return value === undefined ? null : timestamptzText(value);
}

/** A LIMIT the database accepts: a non-negative integer, or null (no limit) for Infinity. */
function limitOf(limit: number | undefined, fallback: number): number | null {
  const value = limit ?? fallback;
  if (Number.isNaN(value)) return fallback;
  if (value === Number.POSITIVE_INFINITY) return null;
  return Math.max(0, Math.floor(value));
}

/** Postgres text cannot hold NUL: it is replaced by U+FFFD. */
function text(value: string): string {
  return value.includes('\u0000') ? value.replaceAll('\u0000', '\uFFFD') : value;
}

function assign<T extends object, K extends keyof T>(target: T, key: K, value: T[K] | undefined): void {
  if (value !== undefined) target[key] = value;
}

function toJob(row: Row): Job {
  const job: Job = {
    id: row.id as string,
    spec: row.spec as Job['spec'],
    state: row.state as Job['state'],
    attempt: row.attempt as number,
    epoch: row.epoch as number,
    createdAt: ms(row.created_at),
  };
  assign(job, 'workerId', optional<string>(row.worker_id));
  assign(job, 'assignedAt', optionalMs(row.assigned_at));
  assign(job, 'startedAt', optionalMs(row.started_at));
  assign(job, 'completedAt', optionalMs(row.completed_at));
  assign(job, 'exitCode', optional<number>(row.exit_code));
  assign(job, 'signal', optional<string>(row.signal));
  assign(job, 'errorMessage', optional<string>(row.error_message));
  assign(job, 'failureReason', optional<Job['failureReason']>(row.failure_reason));
  assign(job, 'durationMs', optional<number>(row.duration_ms));
  assign(job, 'cancelRequestedAt', optionalMs(row.cancel_requested_at));
  assign(job, 'notBefore', optionalMs(row.not_before));
  return job;
}

function toWorker(row: Row): Worker {
  const worker: Worker = {
    id: row.id as string,
    provider: row.provider as string,
    state: row.state as WorkerState,
    capacity: row.capacity as number,
    runningJobIds: (row.running_job_ids as string[] | null) ?? [],
    labels: (row.labels as Record<string, string> | null) ?? {},
    createdAt: ms(row.created_at),
  };
  assign(worker, 'lastHeartbeat', optionalMs(row.last_heartbeat));
  assign(worker, 'idleSince', optionalMs(row.idle_since));
  assign(worker, 'sessionTokenHash', optional<string>(row.session_token_hash));
  assign(worker, 'endedReason', optional<string>(row.ended_reason));
  return worker;
}

type Encoder = (value: never) => unknown;
interface Column {
  column: string;
  encode: Encoder;
  cast?: string;
}

const same = (value: unknown): unknown => value ?? null;
const nullableText = (value: string | undefined): string | null => (value === undefined ? null : text(value));

/** How each Job field is stored. `spec` also sets the denormalized `priority` column used by the queue index. */
const JOB_FIELDS: Record<Exclude<keyof Job, 'id'>, Column> = {
  spec: { column: 'spec', encode: (spec: Job['spec']) => JSON.stringify(spec), cast: 'jsonb' },
  state: { column: 'state', encode: same },
  attempt: { column: 'attempt', encode: same },
  epoch: { column: 'epoch', encode: same },
  workerId: { column: 'worker_id', encode: same },
  createdAt: { column: 'created_at', encode: timestampText },
  assignedAt: { column: 'assigned_at', encode: timestampText },
  startedAt: { column: 'started_at', encode: timestampText },
  completedAt: { column: 'completed_at', encode: timestampText },
  exitCode: { column: 'exit_code', encode: same },
  signal: { column: 'signal', encode: same },
  errorMessage: { column: 'error_message', encode: nullableText },
  failureReason: { column: 'failure_reason', encode: same },
  durationMs: { column: 'duration_ms', encode: same },
  cancelRequestedAt: { column: 'cancel_requested_at', encode: timestampText },
  notBefore: { column: 'not_before', encode: timestampText },
};

const WORKER_FIELDS: Record<Exclude<keyof Worker, 'id'>, Column> = {
  provider: { column: 'provider', encode: same },
  state: { column: 'state', encode: same },
  capacity: { column: 'capacity', encode: same },
  runningJobIds: { column: 'running_job_ids', encode: (ids: string[] | undefined) => ids ?? [], cast: 'text[]' },
  labels: { column: 'labels', encode: (labels: Record<string, string> | undefined) => JSON.stringify(labels ?? {}), cast: 'jsonb' },
  createdAt: { column: 'created_at', encode: timestamp },
  lastHeartbeat: { column: 'last_heartbeat', encode: timestamp },
  idleSince: { column: 'idle_since', encode: timestamp },
  sessionTokenHash: { column: 'session_token_hash', encode: same },
  endedReason: { column: 'ended_reason', encode: nullableText },
};

/**
 * The columns a prepared statement returns for a worker, named: `RETURNING w.*` in a prepared statement fails
 * (0A000, "cached plan must not change result type") once a later migration adds a column to `workers`.
 */
const WORKER_RETURNED = ['id', ...Object.values(WORKER_FIELDS).map((field) => field.column)].map((column) => `w.${column}`).join(', ');

/** Columns and values for the given fields of a record; `undefined` becomes NULL. */
function encodeFields<T extends object>(
  fields: Record<string, Column>,
  record: Partial<T>,
  keys: Iterable<string>,
): { columns: string[]; values: unknown[]; casts: (string | undefined)[] } {
  const columns: string[] = [];
  const values: unknown[] = [];
  const casts: (string | undefined)[] = [];
  for (const key of keys) {
    const field = fields[key];
    if (!field) continue;
    columns.push(field.column);
    values.push((field.encode as (value: unknown) => unknown)((record as Record<string, unknown>)[key]));
    casts.push(field.cast);
  }
  if (columns.includes('spec')) {
    columns.push('priority');
    values.push((record as Partial<Job>).spec?.priority ?? 0);
    casts.push(undefined);
  }
  return { columns, values, casts };
}


/**
 * The first `limit` (an SQL expression) QUEUED jobs in queue order: their ids from `hodei_queue_head` (migration 8:
 * the queue rows, rechecked against `jobs` before the limit), each job read by id (`= ANY` also drops a job's
 * second queue row, which it has while a claim that holds its first is settling).
 */
function queueHeadSql(schema: string, jobs: string, limit: string): string {
  return `SELECT j.* FROM ${jobs} AS j WHERE j.id = ANY(ARRAY(SELECT ${schema}.hodei_queue_head(${limit}))) AND j.state = 'QUEUED'
  ORDER BY ${queueOrder('j')}`;
}

/**
 * SQL of `listWorkersAndQueue`: the workers in states `$1` (text[]) in insertion order, and the first `$2` QUEUED
 * jobs in queue order (the same read as `queuedJobs`), each as one JSON array of rows, in one statement.
 */
function workersAndQueueSql(schema: string, workers: string, jobs: string): string {
  return `SELECT
  (SELECT coalesce(json_agg(w ORDER BY w.insert_seq), '[]'::json) FROM ${workers} AS w WHERE w.state = ANY($1::text[])) AS workers,
  (SELECT coalesce(json_agg(q ORDER BY ${queueOrder('q')}), '[]'::json) FROM (${queueHeadSql(schema, jobs, '$2')}) AS q) AS queued`;
}

/**
 * SQL of `addRunningJobs`: appends to worker `$1`'s `running_job_ids` the ids of `$2` (text[]) it does not list
 * yet, in their order, while it is READY or BUSY, and sets its state by the new count (BUSY at capacity) and clears
 * `idle_since`. A worker that lists them all already matches whatever its state and is left as it is (a retried
 * call). The SET expressions read the row as locked, so concurrent changes of the worker are not lost.
 */
function addRunningJobsSql(workers: string): string {
  const added = `ARRAY(SELECT a.id FROM unnest($2::text[]) WITH ORDINALITY AS a(id, n) WHERE a.id <> ALL(w.running_job_ids) ORDER BY a.n)`;
  return `UPDATE ${workers} AS w SET
  running_job_ids = w.running_job_ids || ${added},
  state = CASE WHEN w.state NOT IN ('READY', 'BUSY') OR cardinality(${added}) = 0 THEN w.state
    WHEN cardinality(w.running_job_ids) + cardinality(${added}) >= w.capacity THEN 'BUSY' ELSE 'READY' END,
  idle_since = CASE WHEN w.state IN ('READY', 'BUSY') AND cardinality(${added}) > 0 THEN NULL ELSE w.idle_since END
WHERE w.id = $1 AND (w.state IN ('READY', 'BUSY') OR $2::text[] <@ w.running_job_ids)
RETURNING ${WORKER_RETURNED}`;
}

/**
 * SQL of `removeRunningJobs`: drops the ids of `$2` (text[]) from worker `$1`'s `running_job_ids`, sets a READY
 * or BUSY worker's state by the count left (BUSY at capacity) and `idle_since` to `$3` when none is left, in one
 * statement whose SET expressions read the row as locked.
 */
function removeRunningJobsSql(workers: string): string {
  const left = `ARRAY(SELECT r.id FROM unnest(w.running_job_ids) WITH ORDINALITY AS r(id, n) WHERE r.id <> ALL($2::text[]) ORDER BY r.n)`;
  return `UPDATE ${workers} AS w SET
  running_job_ids = ${left},
  state = CASE WHEN w.state NOT IN ('READY', 'BUSY') THEN w.state
    WHEN cardinality(${left}) >= w.capacity THEN 'BUSY' ELSE 'READY' END,
  idle_since = CASE WHEN cardinality(${left}) = 0 THEN $3::timestamptz ELSE w.idle_since END
WHERE w.id = $1
RETURNING ${WORKER_RETURNED}`;
}

/** One pending `insertJob` call, encoded when the call was made (every column, in JOB_FIELDS order). */
interface JobInsert {
  id: string;
  columns: string[];
  values: unknown[];
  /** The audit event written with the job, if any. */
  audit: AuditAppend | undefined;
}

/** One pending `updateJob` call, its patch encoded when the call was made. */
interface JobUpdate {
  id: string;
  guard: JobGuard;
  patch: Partial<Job>;
  columns: string[];
  values: unknown[];
  /** The audit events written with the change, in order (only when the guard matches). */
  audit: AuditAppend[];
  /** Which of those events the statement derives from the updated row instead, if it gives them exactly. */
  elision: ElisionProposal;
  /** The caller need not read the job back (`compareAndSetJob`). */
  narrow: boolean;
}

/** What a narrow update (`compareAndSetJob`) settles with when its guard matched. */
const MATCHED = true;

/** One pending `appendLogs` call, its lines encoded when the call was made. */
interface LogAppend {
  jobId: string;
  times: Date[];
  streams: string[];
  texts: string[];
}

/** Lines with consecutive seqs packed together, a new batch at each gap. */
function consecutiveBatches(lines: readonly LogLine[]): LogLineBatch[] {
  const batches: LogLineBatch[] = [];
  let start = 0;
  for (let index = 1; index <= lines.length; index++) {
    if (index < lines.length && lines[index]!.seq === lines[index - 1]!.seq + 1) continue;
    batches.push({ ...packLogLineBatch(lines.slice(start, index)), firstSeq: lines[start]!.seq });
    start = index;
  }
  return batches;
}

/** One pending `appendAudit` call, encoded when the call was made. */
interface AuditAppend {
  eventType: string;
  correlationId: string;
  /** As `timestamptz` text (`timestamptzText`). */
  occurredAt: string;
  details: string | null;
}

/** An audit event as a batch row. */
function encodeAudit(event: AuditEvent): AuditAppend {
  return {
    eventType: event.eventType,
    correlationId: event.correlationId,
    occurredAt: timestamptzText(event.occurredAt),
    details: event.details === undefined ? null : JSON.stringify(event.details),
  };
}

/** The four audit arrays of a batch (see `appendAuditsSql`); a row without an event has a null type. */
function auditArrays(events: readonly (AuditAppend | undefined)[]): string[] {
  return [
    arrayLiteral(events.map((event) => event?.eventType ?? null)),
    arrayLiteral(events.map((event) => event?.correlationId ?? null)),
    arrayLiteral(events.map((event) => event?.occurredAt ?? null)),
    arrayLiteral(events.map((event) => event?.details ?? null)),
  ];
}

/**
 * `text` as PostgreSQL stores it: a lone surrogate (UTF-16 that is not valid text) becomes U+FFFD on its way to
 * the server, so a row found by such an id comes back with that id.
 */
function storedText(text: string): string {
  return /[\uD800-\uDFFF]/.test(text) ? Buffer.from(text, 'utf8').toString('utf8') : text;
}

/** Errors that may belong to one row of a batch (a duplicate key, a refused value): retry row by row. */
function mayBelongToOneRow(error: unknown): boolean {
  return HodeiError.isInstance(error) && (error.code === 'CONFLICT' || error.code === 'INVALID_ARGUMENT');
}

/**
 * The most text (UTF-16 units of the encoded values) one insert statement carries: its specs travel as one jsonb
 * array, which PostgreSQL caps at 256 MiB (a turn of 500 specs near the 1 MiB a spec may have would pass it).
 * 64 Mi units stay under the cap even if every one took 3 bytes.
 */
const INSERT_RUN_MAX_TEXT = 64 * 1024 * 1024;

/** The text a job insert sends: the length of its encoded string values. */
function textLength(job: JobInsert): number {
  let length = job.id.length;
  for (const value of job.values) if (typeof value === 'string') length += value.length;
  return length;
}

/**
 * The most text one `readLogBatches` page holds, in characters: a page is one string, and Node refuses strings
 * past 2^29 UTF-16 units (8,192 lines of 64 KiB). A page stops before the line that would pass this (its first
 * line is always in it); the reader asks again from the next seq.
 */
export const READ_PAGE_MAX_CHARS = 8 * 1024 * 1024;

/** The most calls one batched statement carries. */
const MAX_BATCH = 500;

/**
 * The most batches of `updateJob` calls in flight at once. Calls made meanwhile wait and then share the next
 * statement: under load, a few statements of many rows instead of one per turn of the event loop (each a
 * commit and a statement's fixed cost). Measured with bench/store.mjs --prefetch 500 (20,000 finishes): 839
 * statements of 24 rows with no limit, about 240 of 84 with 2, and 40 % less PostgreSQL time in them. A call
 * made while none is in flight runs at once, as before.
 */
const JOB_UPDATE_STATEMENTS_IN_FLIGHT = 2;

/**
 * How long calls wait for one of the {@link JOB_UPDATE_STATEMENTS_IN_FLIGHT} statements to settle before their
 * own statement starts anyway: a statement held up (a row lock taken by another client, a connection that
 * hangs) must not hold up every other job's update. Statements of hundreds of rows take a few milliseconds.
 */
const JOB_UPDATE_MAX_WAIT_MS = 50;

/** The process id of a connection's server backend (pg sets it at connect; its typings leave it out). */
function backendPid(client: pg.PoolClient): number {
  return (client as unknown as { processID: number }).processID;
}

/**
 * A `Store` on PostgreSQL, so several engines can share jobs, workers, logs, tokens and audit events.
 * Every method is atomic on its own: job and worker updates are compare-and-set in a single
 * `UPDATE ... WHERE ... RETURNING`, log lines get their seq from a per-job counter bumped in the same
 * statement, and a token is consumed with `DELETE ... RETURNING`.
 *
 * Calls made in the same turn of the event loop share statements: `insertJob`, `updateJob`, `appendLogs`
 * and `appendAudit` calls are coalesced (up to 500 at a time) into one `INSERT ... SELECT FROM unnest(...)`
 * or `UPDATE ... FROM unnest(...) RETURNING` each, a prepared statement. Each caller still gets its own
 * outcome: every row carries its own compare-and-set guard, updates of one job in one turn are applied in
 * call order (one statement per repeat), and when a batch fails on one row's data (a duplicate id, a value
 * the schema refuses) its rows are retried one by one so only that caller sees the error. At most two
 * `updateJob` statements run at once; calls made meanwhile share the next one.
 *
 * @example
 * const store = createPostgresStore({ connectionString: process.env.HODEI_DATABASE_URL! });
 * const platform = await createPlatform({ store, providers: [new ProcessProvider()] });
 * // ...
 * await platform.close(); // the platform leaves a store you passed in open
 * await store.close();
 */
export class PostgresStore implements Store {
  readonly specificationVersion = 'v1' as const;
  readonly name = 'postgres';
  /**
   * The pool queries run on. When the store made it, its connections skip the per-row job-change trigger (the
   * store's own statements announce their changes): change jobs through the store, not with SQL on this pool,
   * or the other servers' waiters on those jobs are not woken.
   */
  readonly pool: pg.Pool;
  /** The schema the tables live in. */
  readonly schema: string;
  private readonly ownsPool: boolean;
  private readonly autoMigrate: boolean;
  private readonly t: { jobs: string; workers: string; logs: string; audit: string; tokens: string; live: LiveTables };
  private migrating: Promise<MigrateResult> | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
  /** Connection settings for the dedicated LISTEN connection (the pool's own). */
  private readonly clientConfig: pg.ClientConfig;
  private readonly listenHealthCheckMs: number;
  /** The NOTIFY channel `insertJob` and re-queues signal on. */
  readonly channel: string;
  private readonly queuedListeners = new Set<() => void>();
  /** The NOTIFY channel the `jobs_state_changed` trigger signals a job's state change on (payload: its id). */
  readonly changedChannel: string;
  private readonly changedListeners = new Set<(jobId: string | undefined, state?: JobState) => void>();
  /**
   * Backend process ids of this store's own pool connections, when it made its pool: the state changes they
   * write are announced to `onJobChanged` listeners right after the statement (see `announceChanged`), so
   * the trigger's NOTIFY of them (sent by one of these backends) is not announced a second time. With a pool
   * passed in, other code may change jobs through it: every NOTIFY is announced then (and this store's own
   * changes twice: a spurious wake-up at worst).
   */
  private readonly ownBackends = new Set<number>();
  private listener: pg.Client | undefined;
  private listenerActive = false;
  private listenerGeneration = 0;
  private listenerTimer: NodeJS.Timeout | undefined;
  private listenerBackoffMs = LISTEN_BACKOFF_MIN_MS;
  private listenerConnects = 0;
  /** Batched statements: concurrent calls share one statement (see the class comment). */
  private readonly jobInserts = new MicroBatcher<JobInsert, void>({
    maxBatch: MAX_BATCH,
    run: (jobs) => this.insertJobs(jobs),
  });
  private readonly jobUpdates = new MicroBatcher<JobUpdate, Job | typeof MATCHED | undefined>({
    maxBatch: MAX_BATCH,
    maxInFlight: JOB_UPDATE_STATEMENTS_IN_FLIGHT,
    maxWaitMs: JOB_UPDATE_MAX_WAIT_MS,
    run: (updates) => this.updateJobs(updates),
  });
  private readonly jobReads = new MicroBatcher<string, Row | undefined>({
    maxBatch: MAX_BATCH,
    // An id PostgreSQL refuses (a NUL in it) fails its own caller, not the others of the turn.
    run: (ids) => settleEach(ids, (batch) => this.readJobRows(batch), mayBelongToOneRow),
  });
  private readonly logAppends = new MicroBatcher<LogAppend, number>({
    maxBatch: MAX_BATCH,
    run: (appends) => this.appendLogsBatch(appends),
  });
  private readonly logBatchAppends = new MicroBatcher<EncodedLogBatch, number>({
    maxBatch: MAX_BATCH,
    run: (batches) => this.appendLogBatchesBatch(batches),
  });
  private readonly auditAppends = new MicroBatcher<AuditAppend, void>({
    maxBatch: MAX_BATCH,
    run: (events) => settleEach(events, (batch) => this.appendAudits(batch), mayBelongToOneRow),
  });
  private readonly batchSql = new Map<string, string>();
  /** Prepared-statement names by statement text (a few dozen texts: the batched statements and their shapes). */
  private readonly statementNames = new Map<string, string>();

  constructor(connection: PostgresConnection, options: PostgresStoreOptions = {}) {
    this.schema = validateSchema(options.schema);
    const poolSize = validatePoolSize(options.poolSize);
    if (connection && typeof connection === 'object' && 'pool' in connection && connection.pool) {
      this.pool = connection.pool;
      this.ownsPool = false;
    } else {
      const connectionString = validateConnectionString(
        connection && typeof connection === 'object' ? (connection as { connectionString?: unknown }).connectionString : undefined,
      );
      // A server that does not answer (rather than refusing) fails the query after 10 s instead of hanging.
      // Every statement of this store that changes a job's state NOTIFYs itself (migration 7) and keeps the job's
      // live rows (migration 8): the per-row triggers skip the changes of a session with
      // hodei.notify_by_statement and hodei.live_rows_by_statement on, set here at connection start, after
      // PGOPTIONS (which pg would otherwise apply alone). A URL with its own `options` replaces these and leaves
      // the flags off: the triggers then do the same work again, which is only redundant.
      this.pool = new pg.Pool({
        connectionString,
        max: poolSize,
        connectionTimeoutMillis: 10_000,
        options: [process.env.PGOPTIONS, '-c hodei.notify_by_statement=on -c hodei.live_rows_by_statement=on'].filter(Boolean).join(' '),
      });
      // An idle connection that breaks is dropped by the pool; the next query reports UNAVAILABLE.
      this.pool.on('error', () => undefined);
      this.pool.on('connect', (client) => this.ownBackends.add(backendPid(client)));
      this.pool.on('remove', (client) => this.ownBackends.delete(backendPid(client)));
      this.ownsPool = true;
    }
    this.autoMigrate = options.autoMigrate ?? true;
    const health = options.listenHealthCheckMs ?? 5_000;
    if (typeof health !== 'number' || !Number.isFinite(health) || health < 10) {
      throw new HodeiError('INVALID_ARGUMENT', 'listenHealthCheckMs: expected a number of milliseconds >= 10', {
        field: 'listenHealthCheckMs',
      });
    }
    this.listenHealthCheckMs = health;
    this.clientConfig = { ...(this.pool as unknown as { options: pg.ClientConfig }).options };
    this.channel = queuedChannel(this.schema);
    this.changedChannel = changedChannel(this.schema);
    const s = quoteIdentifier(this.schema);
    this.t = {
      jobs: `${s}.jobs`,
      workers: `${s}.workers`,
      logs: `${s}.job_logs`,
      audit: `${s}.audit_log_rows`,
      tokens: `${s}.worker_tokens`,
      live: { queue: `${s}.job_queue`, claims: `${s}.job_claims` },
    };
  }

  /** Applies pending migrations now (otherwise done before the first query). Safe to call repeatedly. */
  migrate(): Promise<MigrateResult> {
    this.checkOpen();
    const running = (this.migrating ??= migrate(this.pool, { schema: this.schema }).catch((error: unknown) => {
      this.migrating = undefined;
      throw error;
    }));
    return running;
  }

  private checkOpen(): void {
    if (this.closed) throw new HodeiError('CLOSED', 'the postgres store is closed');
  }

  private async query(name: string, sql: string, values: unknown[] = [], prepared = false): Promise<Row[]> {
    this.checkOpen();
    return this.batchQuery(name, sql, values, prepared);
  }

  /**
   * `query` for a batch's statements: no check that the store is open, since a batch started before `close()`
   * may run several statements (rounds, one statement per item after a split) and `close()` waits for them.
   */
  private async batchQuery(name: string, sql: string, values: unknown[] = [], prepared = false): Promise<Row[]> {
    if (this.autoMigrate) await (this.migrating ?? this.migrate());
    try {
      const query = prepared ? { name: this.preparedName(sql), text: sql, values, types: STORE_TYPES } : { text: sql, values, types: STORE_TYPES };
      return (await this.pool.query<Row>(query)).rows;
    } catch (error) {
      throw toHodeiError(name, error);
    }
  }

  // ---- jobs ------------------------------------------------------------------------------------

  async insertJob(job: Job, audit?: AuditEvent): Promise<void> {
    this.checkOpen();
    // Only the fields the job has (a new job leaves most unset, and their columns' defaults, NULL, need no array),
    // in JOB_FIELDS order whatever the order of the job's properties, so that jobs with the same fields share a statement.
    const { columns, values } = encodeFields<Job>(JOB_FIELDS, job, Object.keys(JOB_FIELDS).filter((key) => key in job));
    // A job.queued event its row gives back is derived from it (bit 1 of derived_events), not written.
    const derived = derivesQueued(job, audit);
    columns.push('derived_events');
    values.push(derived ? 1 : 0);
    return this.jobInserts.add({ id: job.id, columns, values, audit: audit && !derived ? encodeAudit(audit) : undefined });
  }

  /**
   * Inserts `jobs` in order: one statement per run of consecutive jobs that set the same fields and do or do not
   * write an audit event (usually one for the whole batch), one run after another, so `insert_seq` follows the
   * calls' order.
   */
  private async insertJobs(jobs: readonly JobInsert[]): Promise<Settled<void>[]> {
    const shapes = jobs.map((job) => `${job.audit ? 'a' : ''}:${job.columns.join(',')}`);
    const sizes = jobs.map(textLength);
    const outcomes: Settled<void>[] = [];
    let start = 0;
    let runText = 0;
    for (let index = 1; index <= jobs.length; index++) {
      runText += sizes[index - 1]!;
      // A run also ends before its text passes the budget: its specs travel as one jsonb value (see insertRun).
      if (index < jobs.length && shapes[index] === shapes[start] && runText + sizes[index]! <= INSERT_RUN_MAX_TEXT) continue;
      runText = 0;
      // Each run commits on its own: a run that fails on one job's data is retried job by job, and only its own
      // (the runs before it are in, and a retry of theirs would report their own ids as taken).
      const [run, shape] = [jobs.slice(start, index), shapes[start]!];
      outcomes.push(...(await settleEach(run, async (batch) => (await this.insertRun(batch, shape), batch.map(() => undefined)), mayBelongToOneRow)));
      start = index;
    }
    return outcomes;
  }

  /**
   * One statement inserting `jobs` (all of `shape`: see insertJobs) in order; the NOTIFY is part of it, so listeners
   * hear of committed jobs only.
   */
  private async insertRun(jobs: readonly JobInsert[], shape: string): Promise<void> {
    const columns = jobs[0]!.columns;
    const audited = jobs[0]!.audit !== undefined;
    // A jsonb column (the spec) as one JSON array of the JSON texts encodeFields made.
    const arrays = columns.map((name, column) =>
      insertedAsJsonArray(name) ? `[${jobs.map((job) => job.values[column] ?? 'null').join(',')}]` : arrayLiteral(jobs.map((job) => job.values[column])),
    );
    const sql = this.cachedSql(`insert:${shape}`, () =>
      insertJobsSql(this.t.jobs, columns, audited ? this.t.audit : undefined, this.t.live),
    );
    const audits = audited ? auditArrays(jobs.map((job) => job.audit)) : [];
    await this.batchQuery('insertJob', sql, [arrayLiteral(jobs.map((job) => job.id)), ...arrays, this.channel, ...audits], true);
  }

  /** `statementName(sql)`, hashed once per statement text. */
  private preparedName(sql: string): string {
    let name = this.statementNames.get(sql);
    if (name === undefined) {
      name = statementName(sql);
      this.statementNames.set(sql, name);
    }
    return name;
  }

  private cachedSql(key: string, build: () => string): string {
    let sql = this.batchSql.get(key);
    if (sql === undefined) {
      sql = build();
      this.batchSql.set(key, sql);
    }
    return sql;
  }

  async getJob(id: string): Promise<Job | undefined> {
    const row = await this.jobRow(id);
    return row && toJob(row);
  }

  /** The job and its `log_count` column (its last line's seq), from one row. */
  async getJobAndLogCount(id: string): Promise<JobAndLogCount | undefined> {
    const row = await this.jobRow(id);
    return row && { job: toJob(row), logCount: Number(row.log_count) };
  }

  /**
   * The `jobs` row with this id, or undefined. The reads of one turn share one statement (`readJobRows`): the
   * engine reads each result's job, and a worker's results are recorded side by side.
   */
  private jobRow(id: string): Promise<Row | undefined> {
    this.checkOpen();
    return this.jobReads.add(id);
  }

  /**
   * The `jobs` rows of `ids`, in their order (undefined for an unknown id), in one statement (its columns named:
   * a prepared `*` breaks once a later migration adds a column). A job asked for twice is read once, and each
   * caller after the first gets its own copy of its spec.
   */
  private async readJobRows(ids: readonly string[]): Promise<(Row | undefined)[]> {
    const rows = await this.batchQuery(
      'getJob',
      this.cachedSql('jobRows', () => `SELECT ${[...JOB_RETURNED_COLUMNS, 'log_count'].join(', ')} FROM ${this.t.jobs} WHERE id = ANY($1::text[])`),
      [arrayLiteral([...new Set(ids)])],
      true,
    );
    const byId = new Map(rows.map((row) => [row.id as string, row]));
    const handed = new Set<Row>();
    return ids.map((id) => {
      const row = byId.get(storedText(id));
      if (row === undefined) return undefined;
      if (handed.has(row)) return { ...row, spec: structuredClone(row.spec) };
      handed.add(row);
      return row;
    });
  }

  /**
   * Newest first. A listing of live states only (QUEUED, ASSIGNED, RUNNING: the stranded sweep's, the engine's
   * at start and stop) reads the live rows of migration 8 and each job by id. Any other walks `jobs` by creation
   * time, newest first, until it has `limit` jobs: `jobs` has no index on its state (so that a job's updates are
   * HOT), and listing a state few recent jobs are in reads far back (74 ms at 300,000 jobs for a state none is
   * in). An empty state list reads nothing.
   */
  async listJobs(filter: JobFilter = {}): Promise<Job[]> {
    const limit = limitOf(filter.limit, DEFAULT_LIST_LIMIT);
    const states = filter.states;
    if (states && states.length === 0) return [];
    // Only live states (not ended: their jobs have live rows, migration 8): those rows are read, not the history.
    if (states && !states.some(isTerminalJobState)) {
      const rows = await this.query(
        'listJobs',
        `SELECT * FROM ${this.t.jobs} WHERE id = ANY(${liveIdsSql(this.t.live.queue, this.t.live.claims)}) AND state = ANY($1::text[])
         ORDER BY created_at DESC, insert_seq DESC LIMIT $2`,
        [[...states], limit],
      );
      return rows.map(toJob);
    }
    const rows = states
      ? await this.query(
          'listJobs',
          `SELECT * FROM ${this.t.jobs} WHERE state = ANY($1::text[]) ORDER BY created_at DESC, insert_seq DESC LIMIT $2`,
          [[...states], limit],
        )
      : await this.query('listJobs', `SELECT * FROM ${this.t.jobs} ORDER BY created_at DESC, insert_seq DESC LIMIT $1`, [
          limit,
        ]);
    return rows.map(toJob);
  }

  async countJobsByState(): Promise<Partial<Record<JobState, number>>> {
    const rows = await this.query('countJobsByState', `SELECT state, count(*)::int AS n FROM ${this.t.jobs} GROUP BY state`);
    return Object.fromEntries(rows.map((row) => [row.state as JobState, row.n as number]));
  }

  async queuedJobs(limit: number): Promise<Job[]> {
    const rows = await this.query('queuedJobs', queueHeadSql(quoteIdentifier(this.schema), this.t.jobs, '$1'), [limitOf(limit, 0)]);
    return rows.map(toJob);
  }

  async updateJob(id: string, guard: JobGuard, patch: Partial<Job>, audit?: AuditEvent | readonly AuditEvent[]): Promise<Job | undefined> {
    const updated = await this.addJobUpdate(id, guard, patch, audit, false);
    return updated === MATCHED ? undefined : updated;
  }

  /** `updateJob` whose statement returns the job's id and state only (see `Store.compareAndSetJob`). */
  async compareAndSetJob(id: string, guard: JobGuard, patch: Partial<Job>, audit?: AuditEvent | readonly AuditEvent[]): Promise<boolean> {
    return (await this.addJobUpdate(id, guard, patch, audit, true)) !== undefined;
  }

  private addJobUpdate(
    id: string,
    guard: JobGuard,
    patch: Partial<Job>,
    audit: AuditEvent | readonly AuditEvent[] | undefined,
    narrow: boolean,
  ): Promise<Job | typeof MATCHED | undefined> {
    this.checkOpen();
    const { columns, values } = encodeFields<Job>(JOB_FIELDS, patch, Object.keys(patch));
    const events = toAuditEventList(audit);
    // Events the statement may derive from the row are not sent (it rebuilds them from the proposal when the row
    // does not give them back: insertUpdateAuditsSql), so they are not encoded either.
    const elision = proposeElision(id, events);
    return this.jobUpdates.add({ id, guard, patch, columns, values, audit: elision.mask === 0 ? events.map(encodeAudit) : [], elision, narrow });
  }

  /**
   * Runs a batch of updates: in rounds where each job appears once (the n-th update of a job in round n,
   * rounds one after another), and within a round one statement per shape (guard kinds and patched columns).
   */
  private async updateJobs(updates: JobUpdate[]): Promise<Settled<Job | typeof MATCHED | undefined>[]> {
    const outcomes = new Map<JobUpdate, Settled<Job | typeof MATCHED | undefined>>();
    for (const round of roundsByKey(updates, (update) => update.id)) {
      const groups = new Map<string, { shape: JobUpdateShape; key: string; items: JobUpdate[] }>();
      for (const update of round) {
        const shape: JobUpdateShape = {
          guardStates: update.guard.states !== undefined,
          guardEpoch: update.guard.epoch !== undefined,
          guardCancel: update.guard.cancelRequested,
          columns: update.columns,
          // Back to QUEUED (a retry): wake the schedulers, in the same statement.
          notify: update.patch.state === 'QUEUED',
          audit: update.audit.length > 0 || update.elision.mask !== 0,
          ...liveRowWork(update.guard.states, update.patch.state, update.columns),
          narrow: update.narrow,
        };
        const key = shapeKey(shape);
        let group = groups.get(key);
        if (!group) groups.set(key, (group = { shape, key, items: [] }));
        group.items.push(update);
      }
      await Promise.all(
        [...groups.values()].map(async ({ shape, key, items }) => {
          const settled = await settleEach(items, (batch) => this.updateJobGroup(shape, key, batch), mayBelongToOneRow);
          items.forEach((item, index) => outcomes.set(item, settled[index]!));
        }),
      );
    }
    return updates.map((update) => outcomes.get(update)!);
  }

  /** One compare-and-set statement for updates of distinct jobs sharing `shape` (whose `shapeKey` is `key`). */
  private async updateJobGroup(shape: JobUpdateShape, key: string, items: readonly JobUpdate[]): Promise<(Job | typeof MATCHED | undefined)[]> {
    const params: unknown[] = [arrayLiteral(items.map((item) => item.id))];
    if (shape.guardStates) params.push(arrayLiteral(items.map((item) => arrayLiteral(item.guard.states ?? []))));
    if (shape.guardEpoch) params.push(arrayLiteral(items.map((item) => item.guard.epoch)));
    shape.columns.forEach((_, column) => params.push(arrayLiteral(items.map((item) => item.values[column]))));
    if (shape.audit) {
      for (const [, , key] of ELISION_ARRAYS) params.push(arrayLiteral(items.map((item) => item.elision[key])));
      // An update that proposes to derive its events has none here (see updateJob).
      const events = items.flatMap((item) => item.audit.map((event) => ({ jobId: item.id, event })));
      params.push(arrayLiteral(events.map(({ jobId }) => jobId)), ...auditArrays(events.map(({ event }) => event)));
    }
    if (shape.notify) params.push(this.channel);
    const sql = this.cachedSql(`update:${key}`, () =>
      updateJobsSql(this.t.jobs, shape, this.t.audit, `${quoteIdentifier(this.schema)}.hodei_job_changed_channel()`, this.t.live),
    );
    const rows = await this.batchQuery('updateJob', sql, params, true);
    if (shape.columns.includes('state')) this.announceChanged(rows);
    const byId = new Map(rows.map((row) => [row.id as string, row]));
    return items.map((item) => {
      const row = byId.get(item.id);
      return row && (shape.narrow ? MATCHED : toJob(row));
    });
  }

  // ---- workers ---------------------------------------------------------------------------------

  async insertWorker(worker: Worker): Promise<void> {
    const keys = Object.keys(WORKER_FIELDS).filter(
      (key) => (worker as unknown as Row)[key] !== undefined || key === 'runningJobIds' || key === 'labels',
    );
    const { columns, values, casts } = encodeFields<Worker>(WORKER_FIELDS, worker, keys);
    const placeholders = values.map((_, index) => `$${index + 2}${casts[index] ? `::${casts[index]}` : ''}`);
    await this.query(
      'insertWorker',
      `INSERT INTO ${this.t.workers} (id, ${columns.join(', ')}) VALUES ($1, ${placeholders.join(', ')})`,
      [worker.id, ...values],
    );
  }

  async getWorker(id: string): Promise<Worker | undefined> {
    const rows = await this.query('getWorker', `SELECT * FROM ${this.t.workers} WHERE id = $1`, [id]);
    return rows[0] && toWorker(rows[0]);
  }

  async listWorkers(filter: { states?: readonly WorkerState[] } = {}): Promise<Worker[]> {
    const rows = filter.states
      ? await this.query(
          'listWorkers',
          `SELECT * FROM ${this.t.workers} WHERE state = ANY($1::text[]) ORDER BY insert_seq`,
          [[...filter.states]],
        )
      : await this.query('listWorkers', `SELECT * FROM ${this.t.workers} ORDER BY insert_seq`);
    return rows.map(toWorker);
  }

  /** The workers in `workerStates` and the first `queueLimit` queued jobs, in one statement (JSON rows). */
  async listWorkersAndQueue(workerStates: readonly WorkerState[], queueLimit: number): Promise<WorkersAndQueue> {
    const sql = this.cachedSql('workersAndQueue', () => workersAndQueueSql(quoteIdentifier(this.schema), this.t.workers, this.t.jobs));
    const [row] = await this.query('listWorkersAndQueue', sql, [[...workerStates], limitOf(queueLimit, 0)], true);
    return { workers: (row!.workers as Row[]).map(toWorker), queuedJobs: (row!.queued as Row[]).map(toJob) };
  }

  async updateWorker(id: string, guard: WorkerGuard, patch: Partial<Worker>): Promise<Worker | undefined> {
    const { columns, values, casts } = encodeFields<Worker>(WORKER_FIELDS, patch, Object.keys(patch));
    const params: unknown[] = [id];
    const where = ['id = $1'];
    if (guard.states) {
      params.push([...guard.states]);
      where.push(`state = ANY($${params.length}::text[])`);
    }
    const sets = columns.map((column, index) => {
      params.push(values[index]);
      return `${column} = $${params.length}${casts[index] ? `::${casts[index]}` : ''}`;
    });
    if (sets.length === 0) sets.push('state = state');
    const rows = await this.query(
      'updateWorker',
      `UPDATE ${this.t.workers} SET ${sets.join(', ')} WHERE ${where.join(' AND ')} RETURNING *`,
      params,
    );
    return rows[0] && toWorker(rows[0]);
  }

  /**
   * Adds job ids to a READY or BUSY worker's running jobs and sets its state by the new count, in one statement (see
   * `Store.addRunningJobs`).
   */
  async addRunningJobs(workerId: string, jobIds: readonly string[]): Promise<Worker | undefined> {
    if (jobIds.length === 0) return this.getWorker(workerId);
    const sql = this.cachedSql('addRunningJobs', () => addRunningJobsSql(this.t.workers));
    const rows = await this.query('addRunningJobs', sql, [workerId, [...new Set(jobIds)]], true);
    return rows[0] && toWorker(rows[0]);
  }

  /**
   * Removes job ids from a worker's running jobs and sets its state and `idle_since` by what is left, in one
   * statement (see `Store.removeRunningJobs`).
   */
  async removeRunningJobs(workerId: string, jobIds: readonly string[], now: number): Promise<Worker | undefined> {
    if (jobIds.length === 0) return this.getWorker(workerId);
    const sql = this.cachedSql('removeRunningJobs', () => removeRunningJobsSql(this.t.workers));
    const rows = await this.query('removeRunningJobs', sql, [workerId, [...jobIds], new Date(now)], true);
    return rows[0] && toWorker(rows[0]);
  }

  // ---- logs ------------------------------------------------------------------------------------

  /**
   * Bumps the job's `log_count` by the batch size (the row lock serializes concurrent appends to one job) and
   * inserts the batch numbered from the old count + 1, in one statement shared with the other jobs' appends
   * of the same turn (appends to one job in one turn run one after another, in call order).
   */
  async appendLogs(jobId: string, lines: readonly NewLogLine[]): Promise<number> {
    if (lines.length === 0) {
      const rows = await this.query('appendLogs', `SELECT log_count FROM ${this.t.jobs} WHERE id = $1`, [jobId]);
      return rows[0] ? Number(rows[0].log_count) : 0;
    }
    this.checkOpen();
    // Not through the packed path of appendLogBatch, on purpose: here each line's time travels as a timestamptz,
    // exact to the millisecond over the whole range, where the packed statement computes it in float8 from the
    // batch's first time plus an offset (a line at 9000000000123 ms, in 2255, is stored 1 ms early; -1.5 ms
    // becomes -2 ms, not -1). Its errors also name this method.
    return this.logAppends.add({
      jobId,
      times: lines.map((line) => new Date(line.timestamp)),
      streams: lines.map((line) => line.stream),
      texts: lines.map((line) => text(line.text)),
    });
  }

  private appendLogsBatch(appends: LogAppend[]): Promise<Settled<number>[]> {
    return this.settleLogAppends('appendLogs', appends, (round) => this.appendLogsRound(round));
  }

  /**
   * Runs log appends in rounds of distinct jobs (appends to one job one after another, in call order), one
   * statement per round (returning each existing job's `id` and new `log_count`); an append whose job does not
   * exist gets `NOT_FOUND`.
   */
  private async settleLogAppends<T extends { jobId: string }>(
    method: string,
    appends: readonly T[],
    statement: (round: readonly T[]) => Promise<Row[]>,
  ): Promise<Settled<number>[]> {
    const lastSeqs = async (round: readonly T[]) => {
      const counts = new Map((await statement(round)).map((row) => [row.id as string, Number(row.log_count)]));
      return round.map((append) => counts.get(append.jobId));
    };
    const outcomes = new Map<T, Settled<number>>();
    for (const round of roundsByKey(appends, (append) => append.jobId)) {
      const settled = await settleEach(round, lastSeqs, mayBelongToOneRow);
      round.forEach((append, index) => {
        const outcome = settled[index]!;
        if (!('value' in outcome)) return outcomes.set(append, outcome);
        if (outcome.value !== undefined) return outcomes.set(append, { value: outcome.value });
        const error = new HodeiError('NOT_FOUND', `postgres store: ${method}: no job with id "${append.jobId}"`, { field: 'jobId' });
        return outcomes.set(append, { error });
      });
    }
    return appends.map((append) => outcomes.get(append)!);
  }

  /** One statement for appends to distinct jobs. */
  private async appendLogsRound(appends: readonly LogAppend[]): Promise<Row[]> {
    const lineJobs: string[] = [];
    const indexes: number[] = [];
    const times: Date[] = [];
    const streams: string[] = [];
    const texts: string[] = [];
    for (const append of appends) {
      append.times.forEach((time, index) => {
        lineJobs.push(append.jobId);
        indexes.push(index + 1);
        times.push(time);
        streams.push(append.streams[index]!);
        texts.push(append.texts[index]!);
      });
    }
    return this.batchQuery(
      'appendLogs',
      this.cachedSql('logs', () => appendLogsSql(this.t.jobs, this.t.logs)),
      [appends.map((append) => append.jobId), appends.map((append) => append.times.length), lineJobs, indexes, times, streams, texts],
      true,
    );
  }

  async readLogs(jobId: string, fromSeq: number, limit: number): Promise<LogLine[]> {
    const rows = await this.query(
      'readLogs',
      `SELECT seq, ts, stream, text FROM ${this.t.logs} WHERE job_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3`,
      [jobId, Math.floor(fromSeq), limitOf(limit, 0)],
    );
    return rows.map((row) => ({
      seq: Number(row.seq),
      timestamp: ms(row.ts),
      stream: row.stream as LogLine['stream'],
      text: row.text as string,
    }));
  }

  /**
   * `appendLogs` for a packed batch, without an object or a converted value per line: the lines still become
   * one row each, numbered from the job's `log_count` + 1 as `appendLogs` numbers them, and appends of the
   * same turn share one statement (appends to one job run one after another, in call order). The texts
   * travel as one string PostgreSQL splits, the timestamps as the first one plus each line's offset from it.
   */
  async appendLogBatch(jobId: string, batch: NewLogLineBatch): Promise<number> {
    if (batch.textLengths.length === 0) return this.appendLogs(jobId, []);
    this.checkOpen();
    return this.logBatchAppends.add(encodeLogBatch(jobId, batch));
  }

  private appendLogBatchesBatch(batches: EncodedLogBatch[]): Promise<Settled<number>[]> {
    return this.settleLogAppends('appendLogBatch', batches, (round) => this.appendLogBatchesRound(round));
  }

  /** One statement for batches of distinct jobs. */
  private async appendLogBatchesRound(batches: readonly EncodedLogBatch[]): Promise<Row[]> {
    const sql = this.cachedSql('logBatches', () => appendLogBatchesSql(this.t.jobs, this.t.logs));
    return this.batchQuery('appendLogBatch', sql, appendLogBatchesParams(batches), true);
  }

  /**
   * `readLogs` as packed batches: PostgreSQL concatenates the page's texts and returns the lengths, timestamps
   * and streams as arrays, so no row object or `Date` is made per line. One batch per call (at most
   * `maxLines` lines); empty past the end.
   */
  async readLogBatches(jobId: string, fromSeq: number, maxLines: number): Promise<LogLineBatch[]> {
    const limit = limitOf(maxLines, 0);
    if (limit === 0) return [];
    const rows = await this.query('readLogBatches', this.cachedSql('readLogBatch', () => readLogBatchSql(this.t.logs)), [jobId, Math.floor(fromSeq), limit, READ_PAGE_MAX_CHARS], true);
    const row = rows[0];
    const batch = row && logBatchFromRow(row);
    if (!batch) return [];
    if (Number(row.last_seq) - batch.firstSeq + 1 === batch.textLengths.length) return [batch];
    // Seqs with a gap (not made by this store) cannot share a batch: pack each consecutive run of the page's
    // lines (no more than the page held, so no more text than its cap allows).
    return consecutiveBatches(await this.readLogs(jobId, fromSeq, batch.textLengths.length));
  }

  // ---- tokens ----------------------------------------------------------------------------------

  async saveToken(token: StoredToken): Promise<void> {
    await this.query(
      'saveToken',
      `INSERT INTO ${this.t.tokens} (hash, worker_id, expires_at) VALUES ($1, $2, $3)
       ON CONFLICT (hash) DO UPDATE SET worker_id = EXCLUDED.worker_id, expires_at = EXCLUDED.expires_at`,
      [token.hash, token.workerId, new Date(token.expiresAt)],
    );
  }

  async consumeToken(hash: string): Promise<StoredToken | undefined> {
    const rows = await this.query('consumeToken', `DELETE FROM ${this.t.tokens} WHERE hash = $1 RETURNING *`, [hash]);
    const row = rows[0];
    return row && { hash: row.hash as string, workerId: row.worker_id as string, expiresAt: ms(row.expires_at) };
  }

  // ---- claims ----------------------------------------------------------------------------------

  /**
   * Claims up to `claim.limit` queued jobs for a worker in one statement (see `claimJobsSql`): the rows are
   * picked in queue order with `FOR UPDATE SKIP LOCKED`, so engines claiming at the same time on one database
   * skip each other's rows rather than wait on them, and each claimed job gets its `job.assigned` audit row in
   * the same statement. A claim retried after a lost reply returns the jobs its first attempt took, and claims
   * no more.
   */
  async claimJobs(claim: JobClaim): Promise<Job[]> {
    const limit = Math.max(0, Math.floor(claim.limit));
    const rows = await this.query(
      'claimJobs',
      this.cachedSql('claim', () => claimJobsSql(quoteIdentifier(this.schema), this.t.jobs, this.t.audit, this.t.live.queue, this.t.live.claims)),
      [claim.workerId, JSON.stringify(claim.labels ?? {}), limit, new Date(claim.now)],
      true,
    );
    this.announceChanged(rows);
    return rows.map(toJob);
  }

  // ---- audit -----------------------------------------------------------------------------------

  async appendAudit(event: AuditEvent): Promise<void> {
    this.checkOpen();
    return this.auditAppends.add(encodeAudit(event));
  }

  /** One statement appending `events` in order. */
  private async appendAudits(events: readonly AuditAppend[]): Promise<void[]> {
    await this.batchQuery(
      'appendAudit',
      this.cachedSql('audit', () => appendAuditsSql(this.t.audit, this.t.jobs)),
      auditArrays(events),
      true,
    );
    return events.map(() => undefined);
  }

  async listAudit(correlationId: string): Promise<AuditEvent[]> {
    // Through the audit_logs view (migration 6): written rows by id, then a job's derived lifecycle events (no id:
    // written after every row of the job, see lifecycle-events.ts) in lifecycle order.
    const rows = await this.query(
      'listAudit',
      `SELECT event_type, correlation_id, occurred_at, details FROM ${quoteIdentifier(this.schema)}.audit_logs
       WHERE correlation_id = $1
       ORDER BY occurred_at ASC, id ASC NULLS LAST,
         CASE event_type WHEN 'job.queued' THEN 1 WHEN 'job.assigned' THEN 2 WHEN 'job.started' THEN 3 ELSE 4 END`,
      [correlationId],
    );
    return rows.map((row) => {
      const event: AuditEvent = {
        eventType: row.event_type as string,
        correlationId: row.correlation_id as string,
        occurredAt: ms(row.occurred_at),
      };
      assign(event, 'details', optional<Record<string, unknown>>(row.details));
      return event;
    });
  }

  // ---- retention ---------------------------------------------------------------------------------

  /**
   * Deletes up to `limit` finished jobs completed before `completedBefore`, the earliest created first, with
   * their log lines; audit events are kept. Concurrent sweeps skip each other's rows. Returns how many it deleted.
   */
  async deleteFinishedJobs(completedBefore: number, limit: number): Promise<number> {
    validateRetentionArguments(completedBefore, limit);
    const rows = await this.query('deleteFinishedJobs', deleteFinishedJobsSql(this.t.jobs), [new Date(completedBefore), limit]);
    // The end of a sweep (a batch that was not full) also drops the live rows their jobs outlived (see
    // live-rows-sql.ts): it reads only the live jobs.
    if (rows.length < limit) await this.query('deleteFinishedJobs', pruneLiveRowsSql(this.t.jobs, this.t.live.queue, this.t.live.claims));
    return rows.length;
  }

  // ---- wake-ups (LISTEN/NOTIFY) -------------------------------------------------------------------

  /**
   * Calls `listener` when a job is queued or re-queued by any engine on this database and schema. The
   * first subscriber opens one dedicated connection (outside the pool) that LISTENs on `channel`; it is
   * probed (the LISTEN repeated, a no-op round trip) every `listenHealthCheckMs` (TCP keepalive on too) and re-opened with backoff
   * (0.1 s doubling to 5 s) when it fails, ends or stops answering. Each (re)connection also calls the
   * listeners once, since jobs may have been queued while it was down. The last unsubscribe closes it.
   */
  onJobQueued(listener: () => void): () => void {
    this.checkOpen();
    const entry = () => listener();
    this.queuedListeners.add(entry);
    this.startListener();
    return () => {
      this.queuedListeners.delete(entry);
      this.stopListenerWhenUnused();
    };
  }

  /**
   * Calls `listener` with a job's id when its state changes, whoever changed it (a trigger NOTIFYs on
   * `changedChannel`; a change made through this store is announced, with the job's new state, as soon as its
   * statement returns), and with `undefined` each time the LISTEN connection is (re)established, since changes
   * made while it was down were not heard. Shares the LISTEN connection of `onJobQueued`.
   */
  onJobChanged(listener: (jobId: string | undefined, state?: JobState) => void): () => void {
    this.checkOpen();
    const entry = (jobId: string | undefined, state?: JobState) => listener(jobId, state);
    this.changedListeners.add(entry);
    this.startListener();
    return () => {
      this.changedListeners.delete(entry);
      this.stopListenerWhenUnused();
    };
  }

  private startListener(): void {
    if (this.listenerActive) return;
    this.listenerActive = true;
    this.connectListener();
  }

  private stopListenerWhenUnused(): void {
    if (this.queuedListeners.size === 0 && this.changedListeners.size === 0) this.stopListener();
  }

  /**
   * Announces to `onJobChanged` listeners, with their new state, the jobs a statement of this store just
   * changed the state of (in this process, as soon as it committed: a round trip before the trigger's NOTIFY
   * of them, which is then ignored when the store made its pool: see `ownBackends`).
   */
  private announceChanged(rows: readonly Row[]): void {
    if (this.changedListeners.size === 0) return;
    for (const row of rows) this.notifyChanged(row.id as string, row.state as JobState);
  }

  private notifyChanged(jobId: string | undefined, state?: JobState): void {
    for (const listener of [...this.changedListeners]) {
      try {
        listener(jobId, state);
      } catch {
        // A listener's failure is its own; the others still run.
      }
    }
  }

  /** How many times the LISTEN connection has been established (for diagnostics and tests). */
  get listenerConnections(): number {
    return this.listenerConnects;
  }

  private notifyQueued(): void {
    for (const listener of [...this.queuedListeners]) {
      try {
        listener();
      } catch {
        // A listener's failure is its own; the others still run.
      }
    }
  }

  private stopListener(): void {
    this.listenerActive = false;
    this.listenerGeneration += 1;
    clearTimeout(this.listenerTimer);
    this.listenerTimer = undefined;
    const client = this.listener;
    this.listener = undefined;
    if (client) void client.end().catch(() => undefined);
  }

  private connectListener(): void {
    if (!this.listenerActive || this.closed) return;
    const generation = ++this.listenerGeneration;
    const client = new pg.Client({
      ...this.clientConfig,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      connectionTimeoutMillis: 10_000,
    });
    this.listener = client;
    let dead = false;
    const die = () => {
      if (dead) return;
      dead = true;
      if (this.listener === client) this.listener = undefined;
      // end() waits for the server on a half-open socket: destroy the socket as well.
      void client.end().catch(() => undefined);
      (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
      if (generation !== this.listenerGeneration || !this.listenerActive || this.closed) return;
      clearTimeout(this.listenerTimer);
      const delay = this.listenerBackoffMs;
      this.listenerBackoffMs = Math.min(LISTEN_BACKOFF_MAX_MS, this.listenerBackoffMs * 2);
      this.listenerTimer = setTimeout(() => this.connectListener(), delay);
      this.listenerTimer.unref();
    };
    client.on('error', die);
    client.on('end', die);
    client.on('notification', (message) => {
      if (message.channel === this.channel) this.notifyQueued();
      else if (message.channel === this.changedChannel && message.payload && !this.ownBackends.has(message.processId)) {
        this.notifyChanged(message.payload);
      }
    });
    void (async () => {
      try {
        await client.connect();
        await client.query(`LISTEN ${quoteIdentifier(this.channel)}; LISTEN ${quoteIdentifier(this.changedChannel)}`);
      } catch {
        die();
        return;
      }
      if (dead || generation !== this.listenerGeneration) return;
      this.listenerConnects += 1;
      this.listenerBackoffMs = LISTEN_BACKOFF_MIN_MS;
      this.notifyQueued();
      this.notifyChanged(undefined);
      this.scheduleProbe(client, generation, die);
    })();
  }

  /**
   * Probes the LISTEN connection (a silent half-open socket never errors on its own) by repeating the
   * LISTEN, a no-op round trip that keeps `pg_stat_activity.query` showing `LISTEN ...` for operators.
   */
  private scheduleProbe(client: pg.Client, generation: number, die: () => void): void {
    clearTimeout(this.listenerTimer);
    this.listenerTimer = setTimeout(() => {
      if (generation !== this.listenerGeneration) return;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('LISTEN connection probe timed out')), this.listenHealthCheckMs);
      });
      Promise.race([client.query(`LISTEN ${quoteIdentifier(this.channel)}`), timeout]).then(
        () => {
          clearTimeout(timer);
          if (generation === this.listenerGeneration) this.scheduleProbe(client, generation, die);
        },
        () => {
          clearTimeout(timer);
          die();
        },
      );
    }, this.listenHealthCheckMs);
    this.listenerTimer.unref();
  }

  /** Ends the store's own pool (a pool you passed in is left open). Idempotent. */
  async close(): Promise<void> {
    // Calls made before close() still run: their batches start now, while the store is open.
    const batchers = [this.jobReads, this.jobInserts, this.jobUpdates, this.logAppends, this.logBatchAppends, this.auditAppends];
    for (const batcher of batchers) batcher.flush(true);
    this.closed = true;
    this.queuedListeners.clear();
    this.changedListeners.clear();
    this.stopListener();
    this.closing ??= (async () => {
      await this.migrating?.catch(() => undefined);
      await Promise.all(batchers.map((batcher) => batcher.drain()));
      if (this.ownsPool) await this.pool.end();
    })();
    return this.closing;
  }
}

/**
 * Creates a PostgreSQL store. Nothing connects until the first query (or `store.migrate()`), which first
 * applies pending migrations. Throws `INVALID_ARGUMENT` (field `connectionString`, `schema` or `poolSize`)
 * for a bad configuration.
 *
 * @example const store = createPostgresStore({ connectionString: 'postgres://hodei:secret@localhost:5432/hodei' });
 */
export function createPostgresStore(connection: PostgresConnection, options: PostgresStoreOptions = {}): PostgresStore {
  return new PostgresStore(connection, options);
}
