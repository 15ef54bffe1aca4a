/**
 * The `hodei` command as a library: `run(argv)` for in-process use, and the pure helpers it is built on.
 * @packageDocumentation
 */
export { run } from './run';
export { processIo, type Io } from './io';
export { EXIT, exitCodeForError, exitCodeForJob } from './exit-codes';
export { formatError, flagForField } from './errors';
export { buildJobSpec, type JobSpecFlags } from './job-spec-options';
export { resolveServerAddress, parseKeyValues, parseStates, parseDurationFlag, DEFAULT_SERVER } from './options';
export { formatTable } from './table';
