/**
 * Workers as local child processes.
 * @packageDocumentation
 */
export { ProcessProvider, TestWorkerProvider, createProcessProvider } from './process-provider';
export type { ProcessProviderOptions } from './process-provider-options';
