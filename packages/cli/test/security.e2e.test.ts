import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestCertificates, type TestCertificates } from '../../provider-process/test/certificates';
import { runCli } from './helpers/cli';
import { startServer, type TestServer } from './helpers/server';

const TOKEN = 'cli-test-token-42';
const NO_SECURITY_ENV = { HODEI_TLS_CA: undefined, HODEI_AUTH_TOKEN: undefined };

describe('hodei server with TLS and an auth token', () => {
  let certs: TestCertificates;
  let server: TestServer;

  beforeAll(async () => {
    certs = makeTestCertificates();
    server = await startServer(['--tls-cert', certs.certFile, '--tls-key', certs.keyFile, '--tls-ca', certs.caFile], {
      ...NO_SECURITY_ENV,
      HODEI_AUTH_TOKEN: TOKEN,
    });
  }, 30_000);
  afterAll(async () => {
    if (server) expect((await server.stop()).result.code).toBe(0);
    certs?.remove();
  });

  it('says it serves TLS, and runs a job for a client with --tls-ca and --auth-token; the job does not see the token', async () => {
    expect(server.output().stdout).toMatch(/^Hodei server listening on 127\.0\.0\.1:\d+ \(TLS\)$/m);
    const result = await runCli(['job', 'run', '--tls-ca', certs.caFile, '--auth-token', TOKEN, '--', 'echo "secure, token: ${HODEI_AUTH_TOKEN:-unset}"'], {
      server: server.address,
      env: NO_SECURITY_ENV,
    });
    expect(result.stderr).toMatch(/^hodei: job job-\S+ queued\n\$ echo "secure, token: \$\{HODEI_AUTH_TOKEN:-unset\}"\n$/);
    expect(result.stdout).toBe('secure, token: unset\n');
    expect(result.code).toBe(0);
  });

  it('takes the CA and the token from HODEI_TLS_CA and HODEI_AUTH_TOKEN', async () => {
    const result = await runCli(['job', 'list'], { server: server.address, env: { HODEI_TLS_CA: certs.caFile, HODEI_AUTH_TOKEN: TOKEN } });
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/echo "secure/);
  });

  it('refuses a client without the token: exit 1, UNAUTHENTICATED message', async () => {
    const result = await runCli(['job', 'queue', '--tls-ca', certs.caFile, '--', 'echo no'], { server: server.address, env: NO_SECURITY_ENV });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^hodei: this server requires an auth token/);
  });

  it('refuses a plaintext client and one that does not trust the CA', async () => {
    const plaintext = await runCli(['job', 'list', '--auth-token', TOKEN], { server: server.address, env: NO_SECURITY_ENV });
    expect(plaintext.code).toBe(1);
    expect(plaintext.stderr).toMatch(/^hodei: cannot reach the Hodei server/);
    const untrusting = await runCli(['job', 'list', '--tls-ca', certs.otherCaFile, '--auth-token', TOKEN], {
      server: server.address,
      env: NO_SECURITY_ENV,
    });
    expect(untrusting.code).toBe(1);
    expect(untrusting.stderr).toMatch(/^hodei: cannot reach the Hodei server/);
  });
});
