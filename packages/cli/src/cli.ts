#!/usr/bin/env node
// grpc-js prints its own "E ..." lines on stderr unless told otherwise, and reads the setting once when it
// loads: silence it for this process only (not for the workers and jobs `hodei server` starts).
const verbosity = process.env.GRPC_VERBOSITY;
process.env.GRPC_VERBOSITY ??= 'NONE';
const { run } = await import('./run');
if (verbosity === undefined) delete process.env.GRPC_VERBOSITY;

function flush(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => stream.write('', () => resolve()));
}

const code = await run(process.argv.slice(2));
await Promise.all([flush(process.stdout), flush(process.stderr)]);
process.exit(code);
export {};
