import { createHash } from 'node:crypto';
import type { ElisionProposal } from './lifecycle-events';
import { enqueueSql, holdSql, lockedJobsSql, OLD_ROW_RETURNED, QUEUE_ROW_RETURNED, releaseSql, requeueSqls } from './live-rows-sql';

/** The live-job tables of migration 8 (quoted, schema-qualified names). */
export interface LiveTables {
  queue: string;
  claims: string;
}

/*
 * SQL for the batched statements of PostgresStore: many jobs inserted, many compare-and-set job updates or
 * many audit events in one statement, each row's values passed as parallel arrays and expanded with
 * `unnest(...)`. Pure text builders; the store encodes the values and runs the statements.
 */

/** The SQL type of each job column a batch writes (jsonb travels as text and is cast per row). */
const JOB_COLUMN_TYPES: Record<string, string> = {
  state: 'text',
  spec: 'jsonb',
  priority: 'integer',
  attempt: 'integer',
  epoch: 'integer',
  worker_id: 'text',
  created_at: 'timestamptz',
  assigned_at: 'timestamptz',
  started_at: 'timestamptz',
  completed_at: 'timestamptz',
  exit_code: 'integer',
  signal: 'text',
  error_message: 'text',
  failure_reason: 'text',
  duration_ms: 'double precision',
  cancel_requested_at: 'timestamptz',
  not_before: 'timestamptz',
  derived_events: 'smallint',
};

/**
 * The job columns a batched statement returns (named, not `*`: a prepared statement returning `*` breaks
 * when a later migration adds a column while it is cached on a connection).
 */
export const JOB_RETURNED_COLUMNS = ['id', ...Object.keys(JOB_COLUMN_TYPES).filter((column) => column !== 'priority')];

function columnType(column: string): string {
  const type = JOB_COLUMN_TYPES[column];
  if (!type) throw new Error(`batch-sql: unknown job column ${column}`);
  return type;
}

/** `$n::type[]` for an array parameter; jsonb is sent as text. */
function arrayParam(index: number, type: string): string {
  return `$${index}::${type === 'jsonb' ? 'text' : type}[]`;
}

/**
 * `unnest(...)` of parallel array parameters, with the first one behind a sub-select the planner cannot look
 * into. A plan then estimates the unnest at PostgreSQL's default row count whatever the batch's length, so
 * the custom plans of a prepared statement cost the same as its generic plan and PostgreSQL keeps the generic
 * plan after five executions. Without it, a batch of fewer than ten rows (its true length, seen by a custom
 * plan) looks cheaper than the generic plan's estimate, and every execution is planned afresh: about 0.1 ms
 * per statement, as much as executing a six-row update. The plan is the same either way (each row found
 * through the primary key).
 */
export function unnestArrays(params: readonly string[]): string {
  const [first, ...rest] = params;
  return `unnest(${[`(SELECT ${first})`, ...rest].join(', ')})`;
}

/** The value of column `column` of the unnested row `alias`, cast back to jsonb where needed. */
function unnested(alias: string, column: string): string {
  return columnType(column) === 'jsonb' ? `${alias}.v_${column}::jsonb` : `${alias}.v_${column}`;
}

/** The columns an audit insert writes, in the order the batched statements give them. */
export const AUDIT_INSERT_COLUMNS = '(event_type, correlation_id, occurred_at, details)';

/** Which of a batch's audit rows {@link insertAuditsSql} writes. */
type AuditRows =
  /** Every row, once the CTE named `after` has run (its rows are counted first). */
  | { after: string }
  /** The rows with an event type (a null type marks a batch row without an event). */
  | 'typed';

/**
 * The audit arrays of a batch, from `$first`: the job each event goes with when `withJobs`, then the four
 * audit fields (types, correlation ids, times, details as JSON text).
 */
function auditParams(first: number, withJobs: boolean): string[] {
  const types = [...(withJobs ? ['text'] : []), 'text', 'text', 'timestamptz', 'text'];
  return types.map((type, index) => `$${first + index}::${type}[]`);
}

/**
 * Inserts a batch's audit events into `table` in array order, from the arrays of {@link auditParams} starting
 * at `$first`, only the rows `rows` says. The batched job inserts and `appendAudit` write their events with
 * this (job updates with insertUpdateAuditsSql).
 */
function insertAuditsSql(table: string, first: number, rows: AuditRows): string {
  return [
    `INSERT INTO ${table} ${AUDIT_INSERT_COLUMNS}`,
    'SELECT a.v_type, a.v_correlation, a.v_at, a.v_details::jsonb',
    `FROM ${unnestArrays(auditParams(first, false))} WITH ORDINALITY AS a(v_type, v_correlation, v_at, v_details, v_ord)`,
    ...(rows === 'typed' ? ['WHERE a.v_type IS NOT NULL'] : []),
    ...(typeof rows === 'object' ? [`WHERE (SELECT count(*) FROM ${rows.after}) >= 0`] : []),
    'ORDER BY a.v_ord',
  ].join('\n');
}

/** `sql` as the body of a CTE: each line indented by two spaces. */
function cteBody(sql: string): string {
  return `  ${sql.replaceAll('\n', '\n  ')}`;
}

/**
 * True for a column {@link insertJobsSql} takes as one JSON array of the rows' values (JSON texts joined with
 * commas, `null` for none; the n-th row's value is its n-th element): the jsonb columns. An array literal of JSON
 * texts would escape every quote of every value in node, and PostgreSQL would unescape the literal and then parse
 * each text: for a job's spec, the largest value of a new job, the escaping alone was a tenth of the memory the
 * store allocated per job in bench/store.mjs.
 */
export function insertedAsJsonArray(column: string): boolean {
  return columnType(column) === 'jsonb';
}

/**
 * Inserts one row per array index. Parameters: `$1` ids, then one per column of `columns` (in that order): an
 * array, or a JSON array for a column `insertedAsJsonArray`, then the NOTIFY channel, signalled once when any inserted job is QUEUED, then, with an `audit` table, the
 * four audit arrays (a row whose event type is null records no event). Each job gets its live row (`live`): a queue row when
 * QUEUED, a claim row when ASSIGNED or RUNNING. Rows are inserted in array order, so `insert_seq`
 * follows the callers' order; the audit events are written by the same statement, so with their jobs or not at all.
 */
export function insertJobsSql(table: string, columns: readonly string[], audit: string | undefined, live: LiveTables): string {
  const arrays = columns.flatMap((column, index) => (insertedAsJsonArray(column) ? [] : [{ column, param: arrayParam(index + 2, columnType(column)) }]));
  const params = [arrayParam(1, 'text'), ...arrays.map(({ param }) => param)];
  const names = ['v_id', ...arrays.map(({ column }) => `v_${column}`), 'v_ord'];
  const values = columns.map((column, index) =>
    insertedAsJsonArray(column) ? `nullif((SELECT $${index + 2}::jsonb) -> (r.v_ord - 1)::integer, 'null')` : unnested('r', column),
  );
  const returned = ['id', 'state', 'created_at', 'not_before', 'worker_id', 'assigned_at'].map((column) => `j.${column}`);
  returned.push(...QUEUE_ROW_RETURNED('j'));
  return `WITH inserted AS (
  INSERT INTO ${table} AS j (id, ${columns.join(', ')})
  SELECT r.v_id, ${values.join(', ')}
  FROM ${unnestArrays(params)} WITH ORDINALITY AS r(${names.join(', ')})
  ORDER BY r.v_ord
  RETURNING ${returned.join(', ')}
), queued AS (
${cteBody(enqueueSql(live.queue, 'inserted'))}
), held AS (
${cteBody(holdSql(live.claims, 'inserted', false))}
)${audit ? `, audited AS (\n${cteBody(insertAuditsSql(audit, columns.length + 3, 'typed'))}\n)` : ''}
SELECT pg_notify($${columns.length + 2}, '') WHERE EXISTS (SELECT 1 FROM inserted WHERE state = 'QUEUED')`;
}

/** What makes job updates share one statement: the same guard kinds and the same patched columns. */
export interface JobUpdateShape {
  /** The guard names states (parameter: one `text[]` literal per row). */
  guardStates: boolean;
  /** The guard names an epoch. */
  guardEpoch: boolean;
  /** The guard asks for a cancel request (`true`) or for none (`false`); undefined: either. */
  guardCancel: boolean | undefined;
  /** The columns the patch sets, in order. */
  columns: readonly string[];
  /** The patch re-queues: signal the NOTIFY channel (the last parameter) in the same statement. */
  notify: boolean;
  /**
   * The updates carry audit events (any number per update), written by the same statement only for the updates
   * whose guard matched.
   */
  audit: boolean;
  /**
   * The updates may move jobs into, out of or within the queue (set the state from or to QUEUED, or
   * `not_before`): their `job_queue` rows follow (migration 8).
   */
  queue: boolean;
  /**
   * The updates may end or move claims (set the state from ASSIGNED or RUNNING, or the worker or claim time):
   * the claim rows the jobs held are deleted when they no longer match.
   */
  release: boolean;
  /** The updates may make claims (set ASSIGNED or RUNNING from another state, or the worker or claim time). */
  hold: boolean;
  /** The callers need not read the jobs back (`compareAndSetJob`): the statement returns their ids and states only. */
  narrow: boolean;
}

/** The job columns a narrow update's CTEs read (its live-row work), all small scalars. */
const NARROW_RETURNED_COLUMNS = ['id', 'state', 'worker_id', 'assigned_at', 'created_at', 'not_before'];

/** The live-table work an update of `patched` columns with guard `guardStates` (undefined: any state) and new state `state` implies. */
export function liveRowWork(
  guardStates: readonly string[] | undefined,
  state: string | undefined,
  patched: readonly string[],
): Pick<JobUpdateShape, 'queue' | 'release' | 'hold'> {
  const claimed = (value: string) => value === 'ASSIGNED' || value === 'RUNNING';
  const mayBe = (test: (value: string) => boolean) => guardStates === undefined || guardStates.some(test);
  const movesClaim = patched.includes('worker_id') || patched.includes('assigned_at');
  return {
    queue: state === 'QUEUED' || patched.includes('not_before') || (state !== undefined && mayBe((value) => value === 'QUEUED')),
    release: movesClaim || (state !== undefined && !claimed(state) && mayBe(claimed)),
    hold: movesClaim || (state !== undefined && claimed(state) && mayBe((value) => !claimed(value))),
  };
}

/**
 * The per-update arrays of an update batch with audit events, after its patched columns: the lifecycle events
 * each update proposes to derive from its row rather than write (`ElisionProposal` of lifecycle-events.ts:
 * their bits, then the values the updated row must hold for them): name, SQL type, proposal field.
 */
export const ELISION_ARRAYS = [
  ['e_mask', 'smallint', 'mask'],
  ['e_assigned_at', 'timestamptz', 'assignedAt'],
  ['e_started_at', 'timestamptz', 'startedAt'],
  ['e_completed_at', 'timestamptz', 'completedAt'],
  ['e_worker', 'text', 'workerId'],
  ['e_epoch', 'integer', 'epoch'],
  ['e_attempt', 'integer', 'attempt'],
  ['e_state', 'text', 'state'],
  ['e_exit', 'integer', 'exitCode'],
] as const satisfies readonly (readonly [string, string, keyof ElisionProposal])[];

/**
 * True (in SQL, within the UPDATE of {@link updateJobsSql}) when the events update `u` proposes to derive
 * (`u.e_mask`) are exactly what the updated row gives: each proposed event's time and details equal the row's
 * new values (the patched ones, else the row's own), and every event already derived from the row is of an
 * earlier kind (so derived events keep the order they were written in). Otherwise the statement writes all of
 * the update's events as rows and clears the row's bits (the seal trigger of migration 6 writes those first).
 */
function elisionHolds(patched: readonly string[]): string {
  const next = (column: string) => (patched.includes(column) ? unnested('u', column) : `j.${column}`);
  return `u.e_mask <> 0 AND j.derived_events < (u.e_mask & -u.e_mask)
    AND ((u.e_mask & 2) = 0 OR (${next('assigned_at')} = u.e_assigned_at AND ${next('worker_id')} = u.e_worker AND ${next('epoch')} = u.e_epoch AND ${next('attempt')} = u.e_attempt))
    AND ((u.e_mask & 4) = 0 OR (${next('started_at')} = u.e_started_at AND ${next('worker_id')} = u.e_worker AND ${next('epoch')} = u.e_epoch))
    AND ((u.e_mask & 8) = 0 OR (${next('completed_at')} = u.e_completed_at AND ${next('state')} = u.e_state AND ${next('exit_code')} IS NOT DISTINCT FROM u.e_exit))`;
}

/**
 * The audit rows of a batch's updates that were not elided (their guard matched but the row does not give their
 * events back), in call order: the events of an update that proposed none are sent in the audit arrays (from
 * `$first`, with the job ids first); those of an update that proposed all of its events (`hodei_e_mask`) are
 * rebuilt from the values it proposed, which are exactly their times and details (see ElisionProposal), so
 * they are not sent twice.
 */
function insertUpdateAuditsSql(table: string, first: number, updated: string): string {
  const names = ['v_job', 'v_type', 'v_correlation', 'v_at', 'v_details', 'v_ord'];
  return [
    `INSERT INTO ${table} ${AUDIT_INSERT_COLUMNS}`,
    'SELECT x.v_type, x.v_correlation, x.v_at, x.v_details FROM (',
    '  SELECT a.v_type, a.v_correlation, a.v_at, a.v_details::jsonb AS v_details, up.hodei_ord, a.v_ord',
    `  FROM ${unnestArrays(auditParams(first, true))} WITH ORDINALITY AS a(${names.join(', ')})`,
    `  JOIN ${updated} AS up ON up.id = a.v_job AND NOT up.hodei_elided`,
    '  UNION ALL',
    '  SELECT e.v_type, up.id, e.v_at, e.v_details, up.hodei_ord, e.bit',
    `  FROM ${updated} AS up CROSS JOIN LATERAL (VALUES`,
    `    (2, 'job.assigned', up.hodei_e_assigned_at, jsonb_build_object('workerId', up.hodei_e_worker, 'epoch', up.hodei_e_epoch, 'attempt', up.hodei_e_attempt)),`,
    `    (4, 'job.started', up.hodei_e_started_at, jsonb_build_object('workerId', up.hodei_e_worker, 'epoch', up.hodei_e_epoch)),`,
    `    (8, 'job.finished', up.hodei_e_completed_at, jsonb_build_object('state', up.hodei_e_state, 'exitCode', up.hodei_e_exit))`,
    '  ) AS e(bit, v_type, v_at, v_details)',
    '  WHERE NOT up.hodei_elided AND (up.hodei_e_mask & e.bit) <> 0',
    ') AS x',
    'ORDER BY x.hodei_ord, x.v_ord',
  ].join('\n');
}

/** A key equal for equal shapes. */
export function shapeKey(shape: JobUpdateShape): string {
  const flag = (on: boolean, letter: string) => (on ? letter : '');
  return `${flag(shape.guardStates, 's')}${flag(shape.guardEpoch, 'e')}${flag(shape.guardCancel === false, 'c')}${flag(shape.guardCancel === true, 'C')}${flag(shape.notify, 'n')}${flag(shape.audit, 'a')}${flag(shape.queue, 'q')}${flag(shape.release, 'r')}${flag(shape.hold, 'h')}${flag(shape.narrow, 'w')}:${shape.columns.join(',')}`;
}

/**
 * Compare-and-set on many jobs in one statement: each row updates the job with its id only when that job
 * matches the row's own guard, and the updated jobs are returned (a row whose guard did not match returns
 * nothing). Ids must be distinct within one statement. Parameters, one array each: ids, guard states
 * (`text[]` literals) when `guardStates`, guard epochs when `guardEpoch` (`guardCancel` needs none: it is
 * the same for every row of the shape), one per patched column; when
 * `audit`, the elision arrays (ELISION_ARRAYS), then five arrays with one entry per audit event of the updates
 * that propose no elision (the id of the job whose update it goes with, then the four audit fields); the
 * events are written to table `audit` for the jobs that were updated only (see insertUpdateAuditsSql); then the
 * NOTIFY channel when `notify`. When the patch sets the state, each updated job's id is sent to
 * `changedChannel` (an SQL expression: migration 7's `hodei_job_changed_channel()`). The updated jobs' live rows
 * (`live`, migration 8) follow as `shape.queue`, `shape.release` and `shape.hold` say. A `shape.narrow` statement
 * returns each updated job's id and state only.
 */
export function updateJobsSql(table: string, shape: JobUpdateShape, audit: string, changedChannel: string, live: LiveTables): string {
  const params: string[] = [];
  const names: string[] = [];
  /** Adds an array to the unnested rows `u`: the next parameter, of `type`, as column `name`. */
  const unnestedArray = (type: string, name: string) => {
    params.push(arrayParam(params.length + 1, type));
    names.push(name);
  };
  unnestedArray('text', 'v_id');
  const where = ['j.id = u.v_id'];
  if (shape.guardStates) {
    unnestedArray('text', 'g_states');
    where.push('j.state = ANY(u.g_states::text[])');
  }
  if (shape.guardEpoch) {
    unnestedArray('integer', 'g_epoch');
    where.push('j.epoch = u.g_epoch');
  }
  if (shape.guardCancel !== undefined) where.push(`j.cancel_requested_at IS ${shape.guardCancel ? 'NOT ' : ''}NULL`);
  for (const column of shape.columns) unnestedArray(columnType(column), `v_${column}`);
  if (shape.audit) for (const [name, type] of ELISION_ARRAYS) unnestedArray(type, name);
  const returned = (shape.narrow ? NARROW_RETURNED_COLUMNS : JOB_RETURNED_COLUMNS).map((column) => `j.${column}`);
  if (shape.queue) returned.push(...QUEUE_ROW_RETURNED('j'));
  // The live-row work that depends on the job as it was (was it QUEUED, which claim did it hold) reads it as
  // locked first; a finish or a start needs only the row as updated.
  // A patch that moves a claim also holds one (liveRowWork), so `hold` covers the release that needs the old claim.
  const movesClaim = shape.columns.includes('worker_id') || shape.columns.includes('assigned_at');
  const readsOldRow = shape.queue || shape.hold;
  if (readsOldRow) {
    returned.push(...OLD_ROW_RETURNED);
    where.push('l.id = j.id');
  }
  const auditFrom = params.length + 1;
  if (shape.audit) params.push(...auditParams(auditFrom, true));
  const sets = shape.columns.map((column) => `${column} = ${unnested('u', column)}`);
  if (shape.audit) {
    sets.push(`derived_events = CASE WHEN ${elisionHolds(shape.columns)} THEN j.derived_events | u.e_mask ELSE 0 END`);
    returned.push('(u.e_mask <> 0 AND (j.derived_events & u.e_mask) = u.e_mask) AS hodei_elided', 'u.v_ord AS hodei_ord');
    returned.push(...ELISION_ARRAYS.map(([name]) => `u.${name} AS hodei_${name}`));
    names.push('v_ord');
  }
  if (sets.length === 0) sets.push('state = j.state');
  // The unnested arrays: every parameter before the audit ones.
  const arrays = unnestArrays(params.slice(0, auditFrom - 1));
  const update = `UPDATE ${table} AS j SET ${sets.join(', ')}
  FROM ${arrays}${shape.audit ? ' WITH ORDINALITY' : ''} AS u(${names.join(', ')})${readsOldRow ? ', locked AS l' : ''}
  WHERE ${where.join(' AND ')}
  RETURNING ${returned.join(', ')}`;
  // A patch that sets the state announces each updated job on the change channel (migration 7).
  const changed = shape.columns.includes('state');
  const ctes: [string, string][] = [];
  if (shape.audit) ctes.push(['audited', insertUpdateAuditsSql(audit, auditFrom, 'updated')]);
  if (shape.queue) ctes.push(...requeueSqls(live.queue, 'updated'));
  if (shape.release) {
    const [worker, assigned] = movesClaim ? ['hodei_old_worker', 'hodei_old_assigned_at'] : ['worker_id', 'assigned_at'];
    ctes.push(['released', releaseSql(live.claims, 'updated', worker, assigned)]);
  }
  if (shape.hold) ctes.push(['held', holdSql(live.claims, 'updated', true)]);
  // Nothing to do beside the update (the old row is read only for live-row work, which is a CTE): the UPDATE alone.
  if (ctes.length === 0 && !shape.notify && !changed) return update;
  const locked = readsOldRow ? `locked AS (${lockedJobsSql(table)}), ` : '';
  const written = ctes.map(([name, sql]) => `, ${name} AS (\n${cteBody(sql)}\n)`).join('');
  const notified = shape.notify ? `, pg_notify($${params.length + 1}, '') AS hodei_notified` : '';
  const announced = changed ? `, pg_notify(${changedChannel}, updated.id) AS hodei_changed` : '';
  const selected = shape.narrow ? ['id', 'state'] : JOB_RETURNED_COLUMNS;
  return `WITH ${locked}updated AS (${update})${written}
SELECT ${selected.map((column) => `updated.${column}`).join(', ')}${notified}${announced} FROM updated`;
}

/**
 * Inserts audit events in array order. Parameters: event types, correlation ids, times, details (JSON text or
 * null). First, a job named as a correlation id gets its derived lifecycle events written as rows (its bits
 * cleared: the seal trigger of migration 6), so that its events of one millisecond keep the order they were
 * written in; the engine appends only worker events this way, so this finds no job in practice.
 */
export function appendAuditsSql(table: string, jobs: string): string {
  return `WITH sealed AS (
  UPDATE ${jobs} SET derived_events = 0 WHERE id = ANY($2::text[]) AND derived_events <> 0 RETURNING 1
)
${insertAuditsSql(table, 1, { after: 'sealed' })}`;
}

/** A prepared-statement name for `sql`: stable and distinct per text (schemas differ in the text). */
export function statementName(sql: string): string {
  return `hodei_${createHash('sha1').update(sql).digest('hex').slice(0, 20)}`;
}

/**
 * Appends log lines to many jobs in one statement: bumps each job's `log_count` by its line count (the row
 * lock serializes concurrent appends to one job) and inserts its lines numbered from the old count + 1.
 * Returns `(id, log_count)` for each job found. Job ids must be distinct within one statement. Parameters:
 * per call, job ids and line counts; per line, its job id, its 1-based index in its call, time, stream, text.
 */
export function appendLogsSql(jobs: string, logs: string): string {
  return `WITH batch AS (
  SELECT * FROM ${unnestArrays(['$1::text[]', '$2::integer[]'])} AS b(v_job, v_count)
), bumped AS (
  UPDATE ${jobs} AS j SET log_count = j.log_count + b.v_count FROM batch b WHERE j.id = b.v_job
  RETURNING j.id, j.log_count, b.v_count
), inserted AS (
  INSERT INTO ${logs} (job_id, seq, ts, stream, text)
  SELECT l.v_job, bumped.log_count - bumped.v_count + l.v_index, l.v_ts, l.v_stream, l.v_text
  FROM ${unnestArrays(['$3::text[]', '$4::integer[]', '$5::timestamptz[]', '$6::text[]', '$7::text[]'])} AS l(v_job, v_index, v_ts, v_stream, v_text)
  JOIN bumped ON bumped.id = l.v_job
)
SELECT id, log_count FROM bumped`;
}
