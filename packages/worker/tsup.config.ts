import { rm } from 'node:fs/promises';
import { defineConfig } from 'tsup';

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
    // The `hodei-worker` bin, bundled into one file with its dependencies (gRPC, the protocol): a worker's
    // cold start is on the path of every provisioned job, and one file spares Node the module resolution
    // walk and the per-module loading of a few hundred files. The agent is still evaluated only once the
    // config is valid (its dynamic import is kept lazy inside the bundle). CommonJS, as gRPC is: Node
    // loads one CommonJS file with less work than an ES module (measured: bench/RESULTS.md).
    entry: { cli: 'src/cli.ts' },
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
    },
  },
]);
