import { HodeiError } from '@hodei/core';
import { migrate } from '@hodei/store-postgres';
import type { Command } from 'commander';
import type { Context } from '../context';
import { openPostgresStore, resolveDatabaseUrl } from './server';

interface MigrateFlags {
  databaseUrl?: string;
}

/** `hodei migrate`: applies the PostgreSQL store's pending migrations and prints the schema version. */
export function registerMigrate(program: Command, ctx: Context): void {
  program
    .command('migrate')
    .description('apply the PostgreSQL store migrations (what "hodei server --store postgres" does at start) and print the schema version')
    .option('--database-url <url>', 'postgres://user:password@host:port/database (default: $HODEI_DATABASE_URL, then $DATABASE_URL)')
    .addHelpText(
      'after',
      `
Prints "schema version N" and the migrations it applied. Safe to run repeatedly and alongside running servers.

Examples:
  $ hodei migrate --database-url postgres://hodei:secret@localhost:5432/hodei`,
    )
    .action(async (flags: MigrateFlags) => {
      const { io } = ctx;
      const url = resolveDatabaseUrl(flags.databaseUrl, io);
      // Validates the URL the way the server does (a malformed one is a usage error naming --database-url).
      await openPostgresStore(url).close();
      let result;
      try {
        result = await migrate(url);
      } catch (error) {
        if (HodeiError.isInstance(error) && error.code === 'UNAVAILABLE') {
          const cause = error.cause instanceof Error ? error.cause.message : error.message;
          throw new HodeiError('UNAVAILABLE', `cannot migrate the database: ${cause}`, { cause: error });
        }
        throw error;
      }
      const applied = result.applied.length === 0 ? 'already up to date' : `applied ${result.applied.join(', ')}`;
      io.stdout.write(`schema version ${result.version} (${applied})\n`);
    });
}
