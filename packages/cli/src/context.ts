import { createClient, type HodeiClient } from '@hodei/core';
import type { Command } from 'commander';
import type { Io } from './io';
import { resolveServerAddress } from './options';

/** What every command gets: where to write, and where to put its exit code. */
export interface Context {
  io: Io;
  exitCode: number;
}

/** Connects to the server named by `--server` / `HODEI_SERVER`, runs `use`, and closes the client. */
export async function withClient<T>(ctx: Context, command: Command, use: (client: HodeiClient) => Promise<T>): Promise<T> {
  const { server } = command.optsWithGlobals<{ server?: string }>();
  const client = createClient({ address: resolveServerAddress(server, ctx.io.env) });
  try {
    return await use(client);
  } finally {
    client.close();
  }
}

export const SERVER_HELP = 'server address host:port (default: $HODEI_SERVER or 127.0.0.1:50051)';
