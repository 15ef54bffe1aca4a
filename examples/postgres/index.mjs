// Hodei on PostgreSQL: DATABASE_URL if set, else a throwaway embedded PostgreSQL for this run.
// Runs a job, then shows what the seed's verification queries see in the database.
import pg from 'pg';
import { createPlatform } from '@hodei/core';
import { ProcessProvider } from '@hodei/provider-process';
import { createPostgresStore } from '@hodei/store-postgres';
import { startDatabase } from '../../scripts/throwaway-postgres.mjs';

const database = process.env.DATABASE_URL ? { url: process.env.DATABASE_URL, stop: async () => {} } : await startDatabase();
const store = createPostgresStore({ connectionString: database.url });
const hodei = await createPlatform({ store, providers: [new ProcessProvider({ maxWorkers: 2 })] });
let ok = false;
try {
  const job = await hodei.client.queue({ name: 'Pipeline Test', command: 'cat /etc/os-release | grep PRETTY_NAME' });
  for await (const line of hodei.client.logs(job.id, { follow: true })) console.log(`${line.stream.padEnd(6)} | ${line.text}`);
  const done = await hodei.client.wait(job.id);
  console.log(`== ${done.state}, exit code ${done.exitCode}`);

  const sql = new pg.Client({ connectionString: database.url });
  await sql.connect();
  const jobs = await sql.query('SELECT id, state, started_at, completed_at, error_message FROM jobs ORDER BY created_at DESC LIMIT 3;');
  console.table(jobs.rows);
  const audit = await sql.query('SELECT event_type, occurred_at FROM audit_logs WHERE correlation_id = $1 ORDER BY occurred_at ASC;', [job.id]);
  console.table(audit.rows);
  await sql.end();
  ok = done.state === 'SUCCEEDED' && jobs.rows[0]?.state === 'SUCCEEDED' && audit.rows.some((row) => row.event_type === 'job.finished');
} finally {
  await hodei.close();
  await store.close();
  await database.stop();
}
process.exit(ok ? 0 : 1);
