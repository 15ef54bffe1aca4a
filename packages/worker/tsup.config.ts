import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { defineConfig } from 'tsup';

/** A loopback port nothing listens on: one the system just gave us, closed again. */
async function closedPort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

/**
 * Runs the built bin once, against a closed loopback port (it compiles its way through gRPC's connection
 * set-up, fails to connect and exits 1), and has it write its V8 code cache on exit.
 */
async function writeCodeCache(): Promise<void> {
  const cache = 'dist/cli-bundle.cjs.cache';
  await rm(cache, { force: true });
  const child = spawn(process.execPath, ['dist/cli.cjs'], {
    env: {
      PATH: process.env.PATH,
      HODEI_SERVER_ADDRESS: `127.0.0.1:${await closedPort()}`,
      HODEI_OTP_TOKEN: 'build',
      HODEI_WORKER_ID: 'build',
      HODEI_WORKER_WRITE_CODE_CACHE: cache,
    },
    stdio: 'ignore',
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 1 || !existsSync(cache)) throw new Error(`writing the worker's code cache failed (the bin exited ${code})`);
}

/** What the bin was built into before it was one bundle: removed so an old checkout does not pack it. */
const FORMER_BIN_FILES = ['cli.js', 'cli-agent.js', 'cli-chunk.js'].flatMap((name) => [name, `${name}.map`]);

// Two builds write into dist/, so neither cleans it (one would delete the other's output); every output
// file has a stable name instead, overwritten on each build.
export default defineConfig([
  {
    // The library: embeddable agent and helpers, for ESM and CJS consumers.
    entry: { index: 'src/index.ts' },
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    clean: false,
    target: 'node20',
  },
  {
    // The `hodei-worker` bin. A worker's cold start is on the path of every provisioned job, so:
    // - cli-bundle.cjs is the worker bundled into one file with its dependencies (gRPC, the protocol): no
    //   module resolution walk, no per-module loading of a few hundred files (bench/RESULTS.md). CommonJS,
    //   as gRPC is: an ES module bundle would need a require() shim for it, and a CommonJS one can be run
    //   through vm.Script with a code cache. The agent is still evaluated only once the config is valid
    //   (its dynamic import stays lazy inside the bundle).
    // - cli.cjs, the bin, runs that bundle through a V8 code cache written by a run of it right after the
    //   build (cli-bundle.cjs.cache), which spares most of the compiling; see src/cli-loader.ts.
    entry: { cli: 'src/cli-loader.ts', 'cli-bundle': 'src/cli.ts' },
    format: ['cjs'],
    dts: false,
    sourcemap: true,
    clean: false,
    splitting: false,
    target: 'node20',
    platform: 'node',
    noExternal: [/.*/],
    // Loaded by gRPC only for channelz and ORCA (server-side features the worker never turns on), from
    // .proto files beside gRPC's own sources that a bundle would not have anyway; left out of the bundle.
    // (tsup's `external` loses to `noExternal`, so a plugin marks it.)
    esbuildPlugins: [
      {
        name: 'leave-out-proto-loader',
        setup(build) {
          build.onResolve({ filter: /^@grpc\/proto-loader$/ }, (args) => ({ path: args.path, external: true }));
        },
      },
    ],
    banner: { js: '#!/usr/bin/env node' },
    async onSuccess() {
      await Promise.all(FORMER_BIN_FILES.map((name) => rm(`dist/${name}`, { force: true })));
      await writeCodeCache();
    },
  },
]);
