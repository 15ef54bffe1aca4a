import { storeConformance } from '@hodei/core/testing';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { createPostgresStore } from '../src';
import { createTestDatabase, type TestDatabase } from './helpers';

let database: TestDatabase;
let admin: pg.Pool;
let schemas = 0;

beforeAll(async () => {
  database = await createTestDatabase();
  admin = new pg.Pool({ connectionString: database.url, max: 2 });
});

afterAll(async () => {
  await admin?.end();
  await database?.drop();
});

// Each test gets its own schema in this file's database: an empty store, migrated on first use.
storeConformance('postgres', async () => {
  schemas += 1;
  const schema = `conformance_${schemas}`;
  const store = createPostgresStore({ connectionString: database.url }, { schema, poolSize: 8 });
  return {
    store,
    cleanup: async () => {
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    },
  };
});
