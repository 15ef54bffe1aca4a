// A PostgresStore on a benchmark's database.
import { createPostgresStore } from '@hodei/store-postgres';
import { startDatabase } from '../../scripts/throwaway-postgres.mjs';

/**
 * Runs `use(store)` with a PostgresStore (created with `options`) on HODEI_BENCH_DATABASE_URL or a throwaway
 * embedded PostgreSQL, then closes the store and stops the database; resolves to what `use` resolved to.
 */
export async function withPostgresStore(use, options) {
  const database = await startDatabase();
  try {
    const store = createPostgresStore({ connectionString: database.url }, options);
    try {
      return await use(store);
    } finally {
      await store.close();
    }
  } finally {
    await database.stop();
  }
}
