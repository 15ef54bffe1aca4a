#!/usr/bin/env node
// PROTOTYPE, NOT THE PRODUCT (issue 7, with store-designs.mjs). What P4's statement-level trigger on `jobs` costs
// an UPDATE that changes no job's state (the store's log-count updates, one statement per log batch): 2,000
// claimed jobs, then 2,000 statements updating the log count of 1 job and 500 of 24 jobs, timed round trip from
// here, for P3 (no trigger), P4 (the guarded trigger), P4 without its guard, and an empty trigger.
//
//   node bench/experiments/store-designs-trigger.mjs
import pg from 'pg';
import { startDatabase } from '../../scripts/throwaway-postgres.mjs';
import { noopJobs } from '../store-jobs.mjs';
import { CLAIMS_TRIGGER_GUARD, DESIGNS, queueParams } from './store-designs.mjs';

const VARIANTS = {
  'P3 no trigger': (s) => DESIGNS.P3.ddl(s),
  'P4 guarded trigger': (s) => DESIGNS.P4.ddl(s),
  'P4 without the guard': (s) => DESIGNS.P4.ddl(s).replace(CLAIMS_TRIGGER_GUARD, ''),
  'empty trigger': (s) =>
    DESIGNS.P4.ddl(s).replace(
      /CREATE FUNCTION (\S+)\.hodei_claims_updated\(\)[\s\S]*?\$\$;/,
      (_, schema) => `CREATE FUNCTION ${schema}.hodei_claims_updated() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END; $$;`,
    ),
};

const database = await startDatabase();
const client = new pg.Client({ connectionString: database.url });
await client.connect();
try {
  for (const round of [1, 2]) {
    for (const [label, ddl] of Object.entries(VARIANTS)) {
      const s = `trigger_${round}_${label.replace(/\W+/g, '_').toLowerCase()}`;
      const design = {
        ...DESIGNS.P3,
        queue: DESIGNS.P3.queue(s),
        claim: DESIGNS[label.startsWith('P3') ? 'P3' : 'P4'].claim(s),
      };
      await client.query(`CREATE SCHEMA ${s}`);
      await client.query(ddl(s));
      const jobs = noopJobs(2_000).map((job, index) => ({
        ...job,
        createdAt: Date.now() - 2_000 + index,
      }));
      await client.query(design.queue, queueParams(jobs, design));
      await client.query(design.claim, ['w-1', '{}', 2_000, new Date()]);
      const ids = jobs.map((job) => job.id);
      const times = [];
      for (const [per, statements] of [
        [1, 2_000],
        [24, 500],
      ]) {
        const text = `UPDATE ${s}.jobs SET log_count = log_count + 1 WHERE id = ANY($1::text[])`;
        const started = performance.now();
        for (let index = 0; index < statements; index += 1) {
          const from = (index * per) % (ids.length - per);
          await client.query({
            name: `${s}_${per}`,
            text,
            values: [ids.slice(from, from + per)],
          });
        }
        times.push(`${per} job(s): ${(((performance.now() - started) * 1000) / statements).toFixed(0)} us`);
      }
      console.log(`round ${round}  ${label.padEnd(22)} per log-count statement, ${times.join(', ')}`);
      await client.query(`DROP SCHEMA ${s} CASCADE`);
    }
  }
} finally {
  await client.end();
  await database.stop();
}
