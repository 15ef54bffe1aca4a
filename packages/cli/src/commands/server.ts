import { createPlatform, HodeiError, type Logger } from '@hodei/core';
import { ProcessProvider } from '@hodei/provider-process';
import type { Command } from 'commander';
import type { Context } from '../context';
import type { Io } from '../io';
import { parseChoice, parseDurationFlag, parseIntegerFlag } from '../options';

export const STORES = ['memory'] as const;
export const PROVIDERS = ['process'] as const;

interface ServerFlags {
  host: string;
  port: string;
  store: string;
  provider: string;
  maxWorkers?: string;
  idleTimeout?: string;
  heartbeatTimeout?: string;
  verbose?: boolean;
}

function stderrLogger(io: Io, verbose: boolean): Logger {
  const write = (level: string) => (fields: Record<string, unknown>, message: string) => {
    const details = Object.entries(fields ?? {})
      .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
      .join(' ');
    io.stderr.write(`hodei server ${level}: ${message}${details ? ` ${details}` : ''}\n`);
  };
  const quiet = () => {};
  return { debug: verbose ? write('debug') : quiet, info: verbose ? write('info') : quiet, warn: write('warn'), error: write('error') };
}

/** `hodei server`: a Hodei server with local worker processes, until SIGINT or SIGTERM. */
export function registerServer(program: Command, ctx: Context): void {
  program
    .command('server')
    .description('run a Hodei server whose workers are local processes, until SIGINT/SIGTERM')
    .option('--host <host>', 'interface to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on; 0 picks a free one', '50051')
    .option('--store <store>', `where jobs are kept: ${STORES.join(', ')}`, 'memory')
    .option('--provider <provider>', `where workers run: ${PROVIDERS.join(', ')}`, 'process')
    .option('--max-workers <n>', 'most worker processes at once (default: number of CPUs)')
    .option('--idle-timeout <duration>', 'stop a worker idle this long (default: 5m)')
    .option('--heartbeat-timeout <duration>', 'declare a silent worker lost after this long (default: 60s)')
    .option('-v, --verbose', 'log engine events on stderr')
    .addHelpText(
      'after',
      `
Prints "Hodei server listening on HOST:PORT" (the port actually bound) on stdout once it serves.
SIGINT or SIGTERM stops the workers and the server, then exits 0.

Examples:
  $ hodei server --max-workers 4
  $ hodei server --port 0 --idle-timeout 30s`,
    )
    .action(async (flags: ServerFlags) => {
      parseChoice(flags.store, '--store', STORES);
      parseChoice(flags.provider, '--provider', PROVIDERS);
      const port = parseIntegerFlag(flags.port, '--port', 0, 65_535);
      const maxWorkers = flags.maxWorkers === undefined ? undefined : parseIntegerFlag(flags.maxWorkers, '--max-workers', 1, 10_000);
      const idleTimeoutMs = flags.idleTimeout === undefined ? undefined : parseDurationFlag(flags.idleTimeout, '--idle-timeout');
      const heartbeatTimeoutMs =
        flags.heartbeatTimeout === undefined ? undefined : parseDurationFlag(flags.heartbeatTimeout, '--heartbeat-timeout');
      if (flags.host.trim() === '') throw new HodeiError('INVALID_ARGUMENT', 'must not be empty', { field: '--host' });
      const { io } = ctx;

      // Subscribe before listening so a signal during start-up is not lost. The handler stays installed
      // after the shutdown (doing nothing) so a late signal cannot kill the process while it exits.
      let signalled: (() => void) | undefined;
      let signals = 0;
      let stopped = false;
      const stopRequested = new Promise<void>((resolve) => (signalled = resolve));
      const unsubscribe = io.onSignal(() => {
        if (stopped) return;
        signals += 1;
        if (signals === 1) signalled?.();
        else {
          io.stderr.write('hodei: second signal; exiting without waiting for workers\n');
          // Exit now: the clean shutdown in progress is being abandoned on purpose.
          process.exit(1);
        }
      });
      let platform;
      try {
        platform = await createPlatform({
          providers: [new ProcessProvider(maxWorkers === undefined ? {} : { maxWorkers })],
          host: flags.host,
          port,
          ...(idleTimeoutMs === undefined ? {} : { idleTimeoutMs }),
          ...(heartbeatTimeoutMs === undefined ? {} : { heartbeatTimeoutMs }),
          logger: stderrLogger(io, flags.verbose ?? false),
        });
      } catch (error) {
        unsubscribe();
        if (HodeiError.isInstance(error) && error.field === 'port') {
          const reason = /EADDRINUSE/.test(error.message)
            ? `${flags.host}:${port} is already in use (another server?); pick another --port, or 0 for any free port`
            : error.message;
          throw new HodeiError('INVALID_ARGUMENT', reason, { field: '--port', cause: error });
        }
        throw error;
      }
      io.stdout.write(`Hodei server listening on ${platform.address}\n`);
      await stopRequested;
      io.stderr.write('hodei: stopping workers and server\n');
      await platform.close();
      stopped = true;
    });
}
