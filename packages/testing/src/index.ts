/**
 * Hodei Jobs in your test suite: {@link createTestPlatform} starts a real in-process server with local
 * worker processes on a free port, runs shell jobs to their end, and cleans up after itself.
 * @packageDocumentation
 */
export {
  createTestPlatform,
  type TestPlatform,
  type TestPlatformOptions,
  type RunResult,
  type CleanupHook,
} from './test-platform';
