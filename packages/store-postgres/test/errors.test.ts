import { HodeiError } from '@hodei/core';
import { describe, expect, it } from 'vitest';
import { toHodeiError } from '../src/errors';
import { useTestClient } from './helpers';

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

  it('a value too long, a missing table and a syntax error are INTERNAL; a terminated session is UNAVAILABLE', async () => {
    const client = testClient();
    await client.query('CREATE TABLE short (v varchar(2))');
    expect(toHodeiError('q', await failure(`INSERT INTO short VALUES ('too long')`))).toMatchObject({ code: 'INTERNAL', message: expect.stringContaining('22001') });
    expect(toHodeiError('q', await failure('SELECT * FROM no_such_table')).code).toBe('INTERNAL');
    expect(toHodeiError('q', await failure('SELEC 1')).code).toBe('INTERNAL');
    client.on('error', () => undefined);
    expect(toHodeiError('q', await failure('SELECT pg_terminate_backend(pg_backend_pid())')).code).toBe('UNAVAILABLE');
  });
});
