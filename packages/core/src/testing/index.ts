/**
 * Shared conformance suites: every Store and every Provider runs the same tests (vitest).
 * @packageDocumentation
 */
export { storeConformance, makeTestJob, makeTestWorker, type StoreUnderTest } from './store-conformance';
export { providerConformance, type ProviderUnderTest, type ProviderConformanceOptions } from './provider-conformance';
