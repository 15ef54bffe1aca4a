import { Writable } from 'node:stream';
import type { Logger } from '@hodei/core';
import { pino } from 'pino';
import pretty from 'pino-pretty';
import type { Io } from './io';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * The server's logger: pino on stderr, human-readable when stderr is a terminal, JSON lines when it is not
 * (for log collectors). stdout stays reserved for the server's address.
 */
export function createCliLogger(io: Io, level: LogLevel, terminal: boolean): Logger {
  const sink = new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      io.stderr.write(chunk.toString());
      done();
    },
  });
  const destination = terminal ? pretty({ destination: sink, colorize: true, sync: true }) : sink;
  return pino({ level, base: { name: 'hodei' } }, destination);
}
