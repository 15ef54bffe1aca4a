import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readWorkerConfig, WorkerConfigError } from '../src/config';

const valid = { HODEI_SERVER_ADDRESS: '127.0.0.1:50051', HODEI_OTP_TOKEN: 'otp', HODEI_WORKER_ID: 'w-1' };

function errorOf(env: Record<string, string | undefined>): WorkerConfigError {
  try {
    readWorkerConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(WorkerConfigError);
    return error as WorkerConfigError;
  }
  throw new Error('expected a WorkerConfigError');
}

describe('readWorkerConfig', () => {
  it('reads a valid environment with defaults', () => {
    expect(readWorkerConfig(valid)).toEqual({
      serverAddress: '127.0.0.1:50051',
      otpToken: 'otp',
      workerId: 'w-1',
      capacity: 1,
      labels: {},
      maxLogBytes: 32 * 1024 * 1024,
    });
  });

  it('reads HODEI_MAX_LOG_BYTES and refuses a bad one naming it', () => {
    expect(readWorkerConfig({ ...valid, HODEI_MAX_LOG_BYTES: '1000' }).maxLogBytes).toBe(1000);
    expect(() => readWorkerConfig({ ...valid, HODEI_MAX_LOG_BYTES: '-1' })).toThrow(/HODEI_MAX_LOG_BYTES/);
  });

  it('strips http://, reads capacity and labels', () => {
    const config = readWorkerConfig({
      ...valid,
      HODEI_SERVER_ADDRESS: 'http://localhost:7070',
      HODEI_WORKER_CAPACITY: '4',
      HODEI_WORKER_LABELS: 'os=linux, gpu=no,empty=',
    });
    expect(config.serverAddress).toBe('localhost:7070');
    expect(config.capacity).toBe(4);
    expect(config.labels).toEqual({ os: 'linux', gpu: 'no', empty: '' });
  });

  it.each(['HODEI_SERVER_ADDRESS', 'HODEI_OTP_TOKEN', 'HODEI_WORKER_ID'])('names %s when it is missing', (name) => {
    const error = errorOf({ ...valid, [name]: undefined });
    expect(error.code).toBe('INVALID_CONFIG');
    expect(error.field).toBe(name);
    expect(error.message).toContain(name);
    expect(error.message).toMatch(/set it to/);
    expect(errorOf({ ...valid, [name]: '  ' }).field).toBe(name);
  });

  it.each([
    ['HODEI_SERVER_ADDRESS', 'localhost'],
    ['HODEI_SERVER_ADDRESS', 'localhost:99999'],
    ['HODEI_TLS_CA', '/no/such/ca.pem'],
    ['HODEI_TLS_CA', 'not a certificate'],
    ['HODEI_WORKER_CAPACITY', '0'],
    ['HODEI_WORKER_CAPACITY', '1.5'],
    ['HODEI_WORKER_CAPACITY', 'two'],
    ['HODEI_WORKER_LABELS', 'novalue'],
    ['HODEI_WORKER_LABELS', '=x'],
  ])('rejects %s=%s', (name, value) => {
    const error = errorOf({ ...valid, [name]: value });
    expect(error.field).toBe(name);
    expect(error.message).toContain(name);
  });

  it('reads HODEI_TLS_CA as PEM text or as a file path, and turns TLS on', () => {
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    expect(readWorkerConfig(valid).tls).toBeUndefined();
    expect(readWorkerConfig({ ...valid, HODEI_TLS_CA: pem }).tls).toEqual({ ca: pem.trim() });
    const dir = mkdtempSync(join(tmpdir(), 'hodei-ca-'));
    writeFileSync(join(dir, 'ca.pem'), pem);
    expect(readWorkerConfig({ ...valid, HODEI_TLS_CA: join(dir, 'ca.pem') }).tls).toEqual({ ca: pem });
    rmSync(dir, { recursive: true, force: true });
  });

  it('takes an https:// server address as TLS with the system roots', () => {
    const config = readWorkerConfig({ ...valid, HODEI_SERVER_ADDRESS: 'https://localhost:1' });
    expect(config.serverAddress).toBe('localhost:1');
    expect(config.tls).toEqual({ ca: undefined });
  });

  it('accepts a bracketed IPv6 address', () => {
    expect(readWorkerConfig({ ...valid, HODEI_SERVER_ADDRESS: '[::1]:5000' }).serverAddress).toBe('[::1]:5000');
  });
});
