import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIGRATIONS, createPostgresStore, migrate } from '../src';
import { createTestDatabase, type TestDatabase } from './helpers';

describe('migrations', () => {
  let database: TestDatabase;
  let pool: pg.Pool;

  beforeAll(async () => {
    database = await createTestDatabase();
    pool = new pg.Pool({ connectionString: database.url, max: 4 });
  });

  afterAll(async () => {
    await pool?.end();
    await database?.drop();
  });

  const latest = Math.max(...MIGRATIONS.map((migration) => migration.version));

  async function recorded(schema: string): Promise<number[]> {
    const result = await pool.query<{ version: number }>(`SELECT version FROM ${schema}.schema_migrations ORDER BY version`);
    return result.rows.map((row) => row.version);
  }

  it('applies every migration once, then nothing (by URL and by pool)', async () => {
    expect(await migrate(database.url, { schema: 'twice' })).toEqual({ applied: MIGRATIONS.map((m) => m.version), version: latest });
    expect(await migrate(database.url, { schema: 'twice' })).toEqual({ applied: [], version: latest });
    expect(await migrate(pool, { schema: 'twice' })).toEqual({ applied: [], version: latest });
    expect(await recorded('twice')).toEqual(MIGRATIONS.map((m) => m.version));
  });

  it('applies each migration exactly once when many engines migrate at the same time', async () => {
    const results = await Promise.all(Array.from({ length: 8 }, () => migrate(database.url, { schema: 'racing' })));
    const applied = results.flatMap((result) => result.applied);
    expect(applied).toEqual(MIGRATIONS.map((m) => m.version));
    expect(results.every((result) => result.version === latest)).toBe(true);
    expect(await recorded('racing')).toEqual(MIGRATIONS.map((m) => m.version));
  });

  it('migrates lazily, once, when a fresh store gets many first queries at once', async () => {
    const stores = Array.from({ length: 4 }, () => createPostgresStore({ connectionString: database.url }, { schema: 'lazy', poolSize: 3 }));
    try {
      const results = await Promise.all(stores.flatMap((store) => [store.getJob('x'), store.listJobs(), store.queuedJobs(5)]));
      expect(results.filter((result) => result !== undefined && (!Array.isArray(result) || result.length > 0))).toEqual([]);
      expect(await recorded('lazy')).toEqual(MIGRATIONS.map((m) => m.version));
      // store.migrate() returns what this store's own (memoized) migration did: one of them applied everything.
      const outcomes = await Promise.all(stores.map((store) => store.migrate()));
      expect(outcomes.flatMap((outcome) => outcome.applied)).toEqual(MIGRATIONS.map((m) => m.version));
    } finally {
      await Promise.all(stores.map((store) => store.close()));
    }
  });

  it('names the migration that failed (a table of another application in the way), not the unlock after it', async () => {
    await pool.query('CREATE SCHEMA taken');
    await pool.query('CREATE TABLE taken.jobs (id bigserial PRIMARY KEY, queue text)');
    const error = await migrate(pool, { schema: 'taken' }).then(
      () => undefined,
      (failure: Error) => failure,
    );
    expect(error?.message).toContain(`migrate (1 ${MIGRATIONS.find((migration) => migration.version === 1)!.name})`);
  });

  it('migrates the public schema by default', async () => {
    await migrate(database.url);
    expect(await recorded('public')).toEqual(MIGRATIONS.map((m) => m.version));
  });

  it('does not migrate when autoMigrate is off until asked', async () => {
    const store = createPostgresStore({ connectionString: database.url }, { schema: 'manual', autoMigrate: false });
    try {
      await expect(store.getJob('x')).rejects.toMatchObject({ code: 'INTERNAL', message: expect.stringContaining('getJob') });
      expect((await store.migrate()).applied).toEqual(MIGRATIONS.map((m) => m.version));
      expect(await store.getJob('x')).toBeUndefined();
    } finally {
      await store.close();
    }
  });
});
