/**
 * The wire protocol between the server, its workers and its clients, generated from `proto/hodei/v1`.
 * @packageDocumentation
 */
export * from './generated/hodei/v1/common';
export * from './generated/hodei/v1/worker';
export * from './generated/hodei/v1/job';
export * from './log-lines';
export * from './secrets';
