import { describe, expect, it } from 'vitest';
import { createCliLogger } from '../src/logging';

function capture() {
  const lines: string[] = [];
  const io = { stdout: { write: () => true }, stderr: { write: (text: string) => lines.push(text) }, env: {}, onSignal: () => () => undefined };
  return { io, lines };
}

describe('createCliLogger', () => {
  it('writes JSON lines to stderr when it is not a terminal, filtered by level', () => {
    const { io, lines } = capture();
    const logger = createCliLogger(io, 'warn', false);
    logger.info({ workerId: 'w-1' }, 'hidden at warn');
    logger.warn({ workerId: 'w-1' }, 'worker lost');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 40, name: 'hodei', workerId: 'w-1', msg: 'worker lost' });
  });

  it('writes readable lines on a terminal', () => {
    const { io, lines } = capture();
    createCliLogger(io, 'info', true).info({ jobId: 'job-1' }, 'job queued');
    const text = lines.join('');
    expect(text).toContain('job queued');
    expect(text).toContain('job-1');
    expect(() => JSON.parse(text)).toThrow();
  });
});
