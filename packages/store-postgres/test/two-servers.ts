import { createPlatform, type Platform } from '@hodei/core';
import { ProcessProvider, type ProcessProviderOptions } from '@hodei/provider-process';
import { createPostgresStore, type PostgresStore, type PostgresStoreOptions } from '../src';
import { createTestDatabase, type TestDatabase } from './helpers';

/** Two servers (platforms), each with its own PostgresStore and ProcessProvider, on one new test database. */
export interface TwoServers {
  db: TestDatabase;
  storeA: PostgresStore;
  storeB: PostgresStore;
  providerA: ProcessProvider;
  providerB: ProcessProvider;
  a: Platform;
  b: Platform;
  /** Closes both platforms, then both stores, then drops the database. */
  close(): Promise<void>;
}

/** Starts {@link TwoServers}: the stores are migrated before either platform starts. */
export async function startTwoServers(options: {
  store: PostgresStoreOptions;
  providerA: ProcessProviderOptions;
  providerB: ProcessProviderOptions;
}): Promise<TwoServers> {
  const db = await createTestDatabase();
  const storeA = createPostgresStore({ connectionString: db.url }, options.store);
  const storeB = createPostgresStore({ connectionString: db.url }, options.store);
  await Promise.all([storeA.migrate(), storeB.migrate()]);
  const providerA = new ProcessProvider(options.providerA);
  const providerB = new ProcessProvider(options.providerB);
  const a = await createPlatform({ store: storeA, providers: [providerA] });
  const b = await createPlatform({ store: storeB, providers: [providerB] });
  return {
    db,
    storeA,
    storeB,
    providerA,
    providerB,
    a,
    b,
    async close() {
      await a.close();
      await b.close();
      await storeA.close();
      await storeB.close();
      await db.drop();
    },
  };
}
