import { defineConfig } from 'tsup';

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
    // The `hodei-worker` bin. Kept lean: only the config reader is loaded until the config is valid;
    // the agent (gRPC, protocol) comes through a dynamic import, as the chunk dist/cli-agent.js.
    entry: { cli: 'src/cli.ts' },
    format: ['esm'],
    dts: false,
    sourcemap: true,
    clean: false,
    splitting: true,
    target: 'node20',
    banner: { js: '#!/usr/bin/env node' },
    esbuildOptions(options) {
      options.chunkNames = 'cli-[name]';
    },
  },
]);
