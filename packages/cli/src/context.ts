import { createClient, type HodeiClient } from '@hodei/core';
import type { Command } from 'commander';
import type { Io } from './io';
import { resolveServerAddress } from './options';
import { resolveClientSecurity } from './security-options';

/** What every command gets: where to write, and where to put its exit code. */
export interface Context {
  io: Io;
  exitCode: number;
}

/**
 * Connects to the server named by `--server` / `HODEI_SERVER` (over TLS with `--tls-ca` / `HODEI_TLS_CA`, with
 * `--auth-token` / `HODEI_AUTH_TOKEN`), runs `use`, and closes the client.
 */
export async function withClient<T>(ctx: Context, command: Command, use: (client: HodeiClient) => Promise<T>): Promise<T> {
  const { server, tlsCa, authToken } = command.optsWithGlobals<{ server?: string; tlsCa?: string; authToken?: string }>();
  const client = createClient({
    address: resolveServerAddress(server, ctx.io.env),
    ...resolveClientSecurity({ ...(tlsCa === undefined ? {} : { tlsCa }), ...(authToken === undefined ? {} : { authToken }) }, ctx.io.env),
  });
  try {
    return await use(client);
  } finally {
    client.close();
  }
}

export const SERVER_HELP = 'server address host:port (default: $HODEI_SERVER or 127.0.0.1:50051)';

/** Adds the options every client command group shares: where the server is and how to connect to it. */
export function addConnectionOptions(command: Command): Command {
  return command
    .option('--server <address>', SERVER_HELP)
    .option('--tls-ca <file>', 'connect over TLS, trusting this CA certificate (PEM file; default: $HODEI_TLS_CA)')
    .option('--auth-token <token>', "the server's client auth token (default: $HODEI_AUTH_TOKEN, which keeps it out of `ps`)");
}
