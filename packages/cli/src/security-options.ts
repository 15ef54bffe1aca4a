import { readFileSync } from 'node:fs';
import { HodeiError, invalidArgument, type ClientOptions } from '@hodei/core';

const CERTIFICATE = '-----BEGIN CERTIFICATE-----';
const PRIVATE_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;

/** Reads a PEM file named by `field` (a flag or an environment variable); errors name that field. */
export function readPemFile(path: string, field: string, kind: 'certificate' | 'private key'): string {
  if (path.trim() === '') throw invalidArgument(field, 'must name a PEM file');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message;
    throw new HodeiError('INVALID_ARGUMENT', `${field}: cannot read ${path}: ${reason}`, { field, cause: error });
  }
  const ok = kind === 'certificate' ? text.includes(CERTIFICATE) : PRIVATE_KEY.test(text);
  if (!ok) throw invalidArgument(field, `${path} is not a PEM ${kind}`);
  return text;
}

/** A bearer token from `flag`, else the environment's HODEI_AUTH_TOKEN; undefined when neither is set. */
export function resolveAuthToken(flag: string | undefined, env: Record<string, string | undefined>): string | undefined {
  const field = flag === undefined ? 'HODEI_AUTH_TOKEN' : '--auth-token';
  const token = flag ?? env.HODEI_AUTH_TOKEN;
  if (token === undefined || (flag === undefined && token === '')) return undefined;
  if (token.trim() === '' || /\s/.test(token)) throw invalidArgument(field, 'must be a non-empty token without spaces');
  return token;
}

/**
 * How a client command connects: TLS trusting `--tls-ca` (else HODEI_TLS_CA: a PEM file path, or PEM text) and
 * the bearer token of `--auth-token` (else HODEI_AUTH_TOKEN).
 */
export function resolveClientSecurity(
  flags: { tlsCa?: string; authToken?: string },
  env: Record<string, string | undefined>,
): Pick<ClientOptions, 'tls' | 'authToken'> {
  const fromEnv = env.HODEI_TLS_CA?.trim() ? env.HODEI_TLS_CA.trim() : undefined;
  let ca: string | undefined;
  if (flags.tlsCa !== undefined) ca = readPemFile(flags.tlsCa, '--tls-ca', 'certificate');
  else if (fromEnv?.startsWith('-----BEGIN')) ca = fromEnv;
  else if (fromEnv !== undefined) ca = readPemFile(fromEnv, 'HODEI_TLS_CA', 'certificate');
  const authToken = resolveAuthToken(flags.authToken, env);
  return { ...(ca ? { tls: { ca } } : {}), ...(authToken ? { authToken } : {}) };
}
