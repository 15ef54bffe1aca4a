#!/usr/bin/env node
// TLS to an IP address (the usual host:port, e.g. 127.0.0.1) makes Node warn DEP0123 because grpc-js sets the
// IP as the TLS server name; the certificate's IP subjectAltName is still verified. Drop that one warning only.
const emitWarning = process.emitWarning.bind(process);
process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
  if (rest[1] === 'DEP0123') return;
  (emitWarning as (...args: unknown[]) => void)(warning, ...rest);
}) as typeof process.emitWarning;
// grpc-js prints its own "E ..." lines on stderr unless told otherwise, and reads the setting once when it
// loads: silence it for this process only (not for the workers and jobs `hodei server` starts).
const verbosity = process.env.GRPC_VERBOSITY;
process.env.GRPC_VERBOSITY ??= 'NONE';
const { run } = await import('./run');
const { processIo } = await import('./io');
if (verbosity === undefined) delete process.env.GRPC_VERBOSITY;

function flush(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => stream.write('', () => resolve()));
}

const io = processIo();
const code = await run(process.argv.slice(2), io);
await Promise.all([flush(process.stdout), flush(process.stderr)]);
// Output the user asked for that could not be written (not a reader that went away: a full disk, say) fails the
// command, whatever it returned; the error of a write is known only once the write was tried, hence here.
const failure = io.outputFailure?.();
if (failure !== undefined) process.stderr.write(`hodei: could not write the output: ${failure}\n`);
process.exit(failure === undefined ? code : 1);
export {};
