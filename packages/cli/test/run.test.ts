import { describe, expect, it } from 'vitest';
import type { Io } from '../src/io';
import { run } from '../src/run';

function memoryIo(env: Record<string, string | undefined> = {}): Io & { out: string; err: string } {
  const io = {
    out: '',
    err: '',
    env,
    stdout: { write: (text: string) => (io.out += text) },
    stderr: { write: (text: string) => (io.err += text) },
    onSignal: () => () => {},
  };
  return io;
}

describe('run (in process)', () => {
  it('prints help to stdout and returns 0', async () => {
    const io = memoryIo();
    expect(await run(['job', 'run', '--help'], io)).toBe(0);
    expect(io.out).toContain('Usage: hodei job run');
    expect(io.out).toContain('$ hodei job run --name "Shell Test"');
  });

  it('returns 2 with one line naming the flag for invalid input, before contacting any server', async () => {
    const io = memoryIo({ HODEI_SERVER: '127.0.0.1:1' });
    expect(await run(['job', 'queue', '--timeout', '-5s', '--', 'echo hi'], io)).toBe(2);
    expect(io.err).toBe('hodei: --timeout: "-5s" is not a duration; use a number with a unit, e.g. 500ms, 90s, 5m, 1h\n');
    expect(io.out).toBe('');
  });

  it('returns 2 for an unknown command and names it', async () => {
    const io = memoryIo();
    expect(await run(['jobs'], io)).toBe(2);
    expect(io.err).toMatch(/^hodei: unknown command 'jobs'/);
  });

  it('rejects a malformed HODEI_SERVER, naming it', async () => {
    const io = memoryIo({ HODEI_SERVER: 'http://x' });
    expect(await run(['worker', 'list'], io)).toBe(2);
    expect(io.err).toBe('hodei: HODEI_SERVER: "http://x" is not host:port, e.g. 127.0.0.1:50051\n');
  });
});
