/**
 * The wire protocol between the server, its workers and its clients, generated from `proto/hodei/v1`.
 *
 * Besides the secret-masking helpers documented here, this entry point re-exports the message types, enums,
 * codecs (`encode`/`decode`/`fromPartial`) and gRPC service definitions that ts-proto generates from
 * `proto/hodei/v1/{common,job,worker}.proto` (e.g. `WorkerMessage`, `ServerMessage`, `JobServiceClient`).
 * Those are the contract between `@hodei/worker` and the server; their reference is the `.proto` files,
 * so they are left out of this API reference. Applications should use `HodeiClient` from `@hodei/core`
 * rather than the raw protocol.
 * @packageDocumentation
 */
export * from './generated/hodei/v1/common';
export * from './generated/hodei/v1/worker';
export * from './generated/hodei/v1/job';
export * from './log-lines';
export * from './secrets';
