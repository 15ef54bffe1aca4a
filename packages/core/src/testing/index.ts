/**
 * Shared conformance suites: every Store and every Provider runs the same tests (vitest).
 * @packageDocumentation
 */
export {};
