import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, inject } from 'vitest';

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** Creates an empty database on the test server; `drop()` removes it (closing its connections). */
export function createTestDatabase(): Promise<TestDatabase> {
  return createDatabase(inject('pgAdminUrl'));
}

/** Creates an empty database through `adminUrl` (a user that may CREATE DATABASE). */
export async function createDatabase(adminUrl: string, prefix = 'hodei_test'): Promise<TestDatabase> {
  const name = `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(name)}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async drop() {
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(name)} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

/** Polls `probe` until it returns a value other than undefined; throws naming `what` after `timeoutMs`. */
export async function until<T>(probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000, what = 'a condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * A client connected to a fresh test database for the tests of the enclosing `describe` (made in `beforeAll`,
 * ended and the database dropped in `afterAll`): call the returned function in a test to get it.
 */
export function useTestClient(): () => pg.Client {
  let database: TestDatabase | undefined;
  let client: pg.Client | undefined;
  beforeAll(async () => {
    database = await createTestDatabase();
    client = new pg.Client({ connectionString: database.url });
    await client.connect();
  });
  afterAll(async () => {
    await client?.end().catch(() => undefined);
    await database?.drop();
  });
  return () => {
    if (!client) throw new Error('useTestClient: no client before beforeAll ran');
    return client;
  };
}

/**
 * A pool of `max` connections to a fresh test database for the tests of the enclosing `describe` (made in
 * `beforeAll`, ended and the database dropped in `afterAll`): call the returned function in a test to get the
 * pool and the database.
 */
export function useTestPool(max: number): () => { pool: pg.Pool; database: TestDatabase } {
  let database: TestDatabase | undefined;
  let pool: pg.Pool | undefined;
  beforeAll(async () => {
    database = await createTestDatabase();
    pool = new pg.Pool({ connectionString: database.url, max });
  });
  afterAll(async () => {
    await pool?.end();
    await database?.drop();
  });
  return () => {
    if (!pool || !database) throw new Error('useTestPool: no pool before beforeAll ran');
    return { pool, database };
  };
}

/** A client holding the row lock of job `id` in schema `schema` until `release()`. */
export async function lockJob(url: string, schema: string, id: string): Promise<{ release(): Promise<void> }> {
  const locker = new pg.Client({ connectionString: url });
  await locker.connect();
  await locker.query('BEGIN');
  await locker.query(`SELECT 1 FROM ${schema}.jobs WHERE id = $1 FOR UPDATE`, [id]);
  return {
    release: async () => {
      await locker.query('COMMIT');
      await locker.end();
    },
  };
}
