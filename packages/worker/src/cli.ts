import { DEFAULT_MAX_JOB_BYTES, readWorkerConfig, WorkerConfigError } from './config';

const HELP = `hodei-worker: the Hodei Jobs worker agent.

Connects to the server over gRPC, registers with a one-time token and runs the jobs it is sent,
streaming their output back. Normally started by a provider, which sets its environment.

Environment:
  HODEI_SERVER_ADDRESS   server gRPC address, host:port (http:// accepted; https:// = TLS) required
  HODEI_OTP_TOKEN        one-time registration token issued by the server                 required
  HODEI_WORKER_ID        the worker id the token was issued for                           required
  HODEI_WORKER_CAPACITY  jobs run at once, a positive integer                             default 1
  HODEI_WORKER_LABELS    labels, key=value pairs separated by commas (os=linux,gpu=no)    optional
  HODEI_MAX_LOG_BYTES    output of one job sent in full; past it only the last 1 MiB      default 32 MiB
  HODEI_TLS_CA           connect over TLS trusting this CA: PEM text or a file path       optional

Signals: SIGTERM or SIGINT drains (running jobs finish), a second cancels them, a third exits at once.
Exit codes: 0 drained, 1 connection to the server lost, 2 invalid configuration, 3 registration refused.
`;

// TLS to an IP address (the usual host:port, e.g. 127.0.0.1) makes Node warn DEP0123 because grpc-js sets the
// IP as the TLS server name; the certificate's IP subjectAltName is still verified. Drop that one warning only.
const emitWarning = process.emitWarning.bind(process);
process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
  if (rest[1] === 'DEP0123') return;
  (emitWarning as (...args: unknown[]) => void)(warning, ...rest);
}) as typeof process.emitWarning;

// Diagnostics are best-effort: the reader of a worker's stderr is often the server that started it (the process
// provider pipes it), and when that server dies the worker must live on, reconnect and land its jobs' results,
// not exit on the EPIPE of its next log line.
process.stderr.on('error', () => undefined);
process.stdout.on('error', () => undefined);

async function main(argv: readonly string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP);
    return 0;
  }
  let config;
  try {
    config = readWorkerConfig(process.env);
  } catch (error) {
    if (!(error instanceof WorkerConfigError)) throw error;
    process.stderr.write(`hodei-worker: ${error.message}\n`);
    return 2;
  }
  // Loaded only now: gRPC and the protocol are the bulk of the worker's start-up time.
  const { startWorker } = await import('./agent');
  return startWorker(config, { handleSignals: true, batching: { maxJobBytes: config.maxLogBytes ?? DEFAULT_MAX_JOB_BYTES } }).done;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`hodei-worker: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
