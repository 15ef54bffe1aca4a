import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { buildCommandLine, shellQuote } from '../src/shell-quote';

const tricky = ['with space', "it's", '"double"', '$HOME', '`id`', 'a;b', 'x && y', '*', '', 'tab\there', 'new\nline', "'", '\\', 'plain', '-n'];

describe('shellQuote', () => {
  it('leaves plain words alone and single-quotes the rest', () => {
    expect(shellQuote('plain-word_1.txt')).toBe('plain-word_1.txt');
    expect(shellQuote('a b')).toBe("'a b'");
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    expect(shellQuote('')).toBe("''");
  });

  it('each argument reaches the command as one unchanged word (real bash)', () => {
    const commandLine = buildCommandLine(`printf '%s\\0'`, tricky);
    const output = execFileSync('/bin/bash', ['-c', commandLine], { encoding: 'utf8', env: { HOME: '/nowhere', PATH: process.env.PATH } });
    expect(output.split('\0').slice(0, -1)).toEqual(tricky);
  });

  it('keeps the command itself as shell syntax', () => {
    expect(buildCommandLine('echo hi | tr a-z A-Z')).toBe('echo hi | tr a-z A-Z');
    // A command from a YAML block ends in a newline: its arguments still go to it, not to a line of their own.
    expect(buildCommandLine('ls -d\n', ['/tmp'])).toBe('ls -d /tmp');
    const line = buildCommandLine('echo', ['a  b', '$X;', 'c']);
    expect(line).toBe(`echo 'a  b' '$X;' c`);
    expect(execFileSync('/bin/bash', ['-c', line], { encoding: 'utf8' })).toBe('a  b $X; c\n');
  });
});
