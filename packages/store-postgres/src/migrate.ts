import pg from 'pg';
import { HodeiError } from '@hodei/core';
import { toHodeiError } from './errors';
import { MIGRATIONS, type Migration } from './migrations';
import { quoteIdentifier, validateConnectionString, validateSchema } from './config';

/** Options of {@link migrate}. */
export interface MigrateOptions {
  /** The schema the tables live in; default `public`. Created when missing. */
  schema?: string;
}

/** What {@link migrate} did. */
export interface MigrateResult {
  /** Versions applied by this call (empty when the schema was already up to date). */
  applied: number[];
  /** The schema's version after the call. */
  version: number;
}

/**
 * Brings the schema up to date: applies every migration not yet recorded in `schema_migrations`, each in
 * its own transaction, while holding a `pg_advisory_lock` so concurrent callers (several engines starting
 * at once) apply each migration exactly once. Idempotent.
 *
 * @example await migrate('postgres://hodei:secret@localhost:5432/hodei');
 */
export async function migrate(target: pg.Pool | string, options: MigrateOptions = {}): Promise<MigrateResult> {
  const schema = validateSchema(options.schema);
  if (typeof target === 'string') {
    const pool = new pg.Pool({ connectionString: validateConnectionString(target), max: 1 });
    pool.on('error', () => undefined);
    try {
      return await migrateWith(pool, schema, MIGRATIONS);
    } finally {
      await pool.end();
    }
  }
  return migrateWith(target, schema, MIGRATIONS);
}

/** @internal exported for tests: runs a given list of migrations. */
export async function migrateWith(pool: pg.Pool, schema: string, migrations: readonly Migration[]): Promise<MigrateResult> {
  const quoted = quoteIdentifier(schema);
  let step = 'connect';
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (error) {
    throw toHodeiError('migrate (connect)', error);
  }
  let broken: Error | undefined;
  try {
    step = 'migrate (lock)';
    await client.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [`hodei.migrations:${schema}`]);
    try {
      step = 'migrate (create schema)';
      const exists = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
      if (exists.rowCount === 0) await client.query(`CREATE SCHEMA ${quoted}`);
      step = 'migrate (schema_migrations)';
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${quoted}.schema_migrations (
           version    integer PRIMARY KEY,
           name       text NOT NULL,
           applied_at timestamptz NOT NULL DEFAULT now()
         )`,
      );
      const done = new Set(
        (await client.query<{ version: number }>(`SELECT version FROM ${quoted}.schema_migrations`)).rows.map(
          (row) => row.version,
        ),
      );
      const applied: number[] = [];
      for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
        if (done.has(migration.version)) continue;
        step = `migrate (${migration.version} ${migration.name})`;
        await client.query('BEGIN');
        try {
          await client.query(migration.sql(quoted));
          await client.query(`INSERT INTO ${quoted}.schema_migrations (version, name) VALUES ($1, $2)`, [
            migration.version,
            migration.name,
          ]);
          await client.query('COMMIT');
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw error;
        }
        applied.push(migration.version);
        done.add(migration.version);
      }
      return { applied, version: Math.max(0, ...done) };
    } finally {
      // An error of the steps above is reported as theirs, not as the unlock's (unless the unlock fails too).
      const failed = step;
      step = 'migrate (unlock)';
      await client.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [`hodei.migrations:${schema}`]);
      step = failed;
    }
  } catch (error) {
    broken = error instanceof Error ? error : new Error(String(error));
    if (HodeiError.isInstance(error)) throw error;
    throw toHodeiError(step, error);
  } finally {
    // A client whose session failed is destroyed, which also drops an advisory lock it may still hold.
    client.release(broken);
  }
}
