import { HodeiError } from '@hodei/core';
import { makeTestJob } from '@hodei/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresStore, type PostgresStore } from '../src';
import { toHodeiError } from '../src/errors';
import { createTestDatabase, useTestClient, type TestDatabase } from './helpers';

/** An error shaped like pg's: a message and, from the server, a SQLSTATE `code`. */
function pgError(message: string, code?: string): Error {
  return Object.assign(new Error(message), code === undefined ? {} : { code });
}

describe('toHodeiError', () => {
  it.each([
    ['08006 connection_failure', pgError('connection failure', '08006')],
    ['08001 unable to connect', pgError('could not connect', '08001')],
    ['57P01 admin_shutdown', pgError('terminating connection due to administrator command', '57P01')],
    ['57P02 crash_shutdown', pgError('terminating connection because of crash of another server process', '57P02')],
    ['57P03 cannot_connect_now', pgError('the database system is starting up', '57P03')],
    ['ECONNREFUSED', pgError('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED')],
    ['ECONNRESET', pgError('read ECONNRESET', 'ECONNRESET')],
    ['EPIPE', pgError('write EPIPE', 'EPIPE')],
    ['ETIMEDOUT', pgError('connect ETIMEDOUT', 'ETIMEDOUT')],
    ['Connection terminated unexpectedly', pgError('Connection terminated unexpectedly')],
    ['Connection terminated due to connection timeout', pgError('Connection terminated due to connection timeout')],
    ['timeout exceeded when trying to connect', pgError('timeout exceeded when trying to connect')],
    ['AggregateError of ECONNREFUSED', Object.assign(new AggregateError([pgError('connect ECONNREFUSED ::1:5432', 'ECONNREFUSED')], ''), {})],
    ['25006 read-only transaction (a primary demoted by a failover)', pgError('cannot execute INSERT in a read-only transaction', '25006')],
  ])('maps %s to UNAVAILABLE (retried through the outage)', (_, error) => {
    expect(toHodeiError('getJob', error)).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringContaining('getJob'), cause: error });
  });

  it.each([
    ['40001 serialization_failure', '40001'],
    ['40P01 deadlock_detected', '40P01'],
  ])('maps %s to ABORTED (retried, but the store is up)', (_, code) => {
    expect(toHodeiError('updateJob', pgError('could not serialize access', code))).toMatchObject({ code: 'ABORTED' });
  });

  it.each([
    ['22001 value too long', '22001'],
    ['22007 invalid datetime format', '22007'],
    ['22008 datetime field overflow (a timestamp out of range or NaN)', '22008'],
    ['22P02 invalid text representation', '22P02'],
  ])('maps %s, a data exception of the value one caller sent, to INVALID_ARGUMENT (a batch is split around it)', (_, code) => {
    expect(toHodeiError('appendLogBatch', pgError('bad value', code))).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('appendLogBatch') });
  });

  it.each([
    ['23503 foreign key violation', '23503'],
    ['42P01 undefined table', '42P01'],
    ['42601 syntax error', '42601'],
    ['XX000 internal error', 'XX000'],
    ['no code at all', undefined],
  ])('maps %s to INTERNAL (never retried)', (_, code) => {
    const error = toHodeiError('insertJob', pgError('it cannot work', code));
    expect(error).toMatchObject({ code: 'INTERNAL', message: expect.stringContaining('insertJob') });
  });

  it('keeps the duplicate key, schema refusals and HodeiErrors as they were', () => {
    expect(toHodeiError('insertJob', pgError('duplicate key', '23505'))).toMatchObject({ code: 'CONFLICT' });
    expect(toHodeiError('insertJob', pgError('check violation', '23514'))).toMatchObject({ code: 'INVALID_ARGUMENT' });
    const hodei = new HodeiError('CLOSED', 'closed');
    expect(toHodeiError('getJob', hodei)).toBe(hodei);
  });
});

describe('toHodeiError on errors from a real PostgreSQL', () => {
  const testClient = useTestClient();

  const failure = (sql: string) => testClient().query(sql).then(() => undefined, (error: unknown) => error);

  it('a value too long and a timestamp out of range are INVALID_ARGUMENT; a missing table and a syntax error INTERNAL; a terminated session UNAVAILABLE', async () => {
    const client = testClient();
    await client.query('CREATE TABLE short (v varchar(2))');
    expect(toHodeiError('q', await failure(`INSERT INTO short VALUES ('too long')`))).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('too long') });
    expect(toHodeiError('q', await failure(`SELECT to_timestamp(1e300)`))).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(toHodeiError('q', await failure('SELECT * FROM no_such_table')).code).toBe('INTERNAL');
    expect(toHodeiError('q', await failure('SELEC 1')).code).toBe('INTERNAL');
    client.on('error', () => undefined);
    expect(toHodeiError('q', await failure('SELECT pg_terminate_backend(pg_backend_pid())')).code).toBe('UNAVAILABLE');
  });
});

describe('a value PostgreSQL refuses in a batched statement', () => {
  let db: TestDatabase;
  let store: PostgresStore;
  beforeAll(async () => {
    db = await createTestDatabase();
    store = createPostgresStore({ connectionString: db.url }, { poolSize: 2 });
    await store.migrate();
  });
  afterAll(async () => {
    await store.close();
    await db.drop();
  });

  const batch = (firstTimestamp: number) => ({ firstSeq: 1, text: 'hello', textLengths: [5], firstTimestamp, timestampDeltas: [0], streams: ['stdout' as const] });

  it.each([
    ['NaN', Number.NaN],
    ['out of range', 1e300],
  ])('fails only its own caller: a log batch dated %s beside a good one of the same turn', async (_, timestamp) => {
    const bad = makeTestJob({ state: 'RUNNING', epoch: 1, workerId: 'w' });
    const good = makeTestJob({ state: 'RUNNING', epoch: 1, workerId: 'w' });
    for (const job of [bad, good]) await store.insertJob(job);
    const [badAppend, goodAppend] = await Promise.allSettled([store.appendLogBatch(bad.id, batch(timestamp)), store.appendLogBatch(good.id, batch(Date.now()))]);
    expect(goodAppend).toMatchObject({ status: 'fulfilled', value: 1 });
    expect(badAppend).toMatchObject({ status: 'rejected', reason: { code: 'INVALID_ARGUMENT' } });
  });
});
