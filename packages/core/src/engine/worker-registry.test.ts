import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../store/memory-store';
import { hashToken } from './tokens';
import { WorkerRegistry } from './worker-registry';

async function setup() {
  let now = 1_000;
  const store = new MemoryStore();
  const clock = { now: () => now };
  const registry = new WorkerRegistry(store, clock, { otpTtlMs: 300_000 });
  for (const id of ['w1', 'w2']) {
    await store.insertWorker({ id, provider: 'p', state: 'CREATING', capacity: 1, runningJobIds: [], labels: {}, createdAt: 0 });
  }
  return { store, registry, advance: (ms: number) => (now += ms) };
}

const refusal = (promise: Promise<unknown>) =>
  promise.then(
    () => 'accepted',
    (error: { code: string }) => error.code,
  );

describe('WorkerRegistry', () => {
  it('issues a 256-bit token and stores only its hash', async () => {
    const { store, registry } = await setup();
    const otp = await registry.issueOtp('w1');
    expect(Buffer.from(otp, 'base64url')).toHaveLength(32);
    const stored = await store.consumeToken(hashToken(otp));
    expect(stored).toMatchObject({ workerId: 'w1' });
    expect(JSON.stringify(stored)).not.toContain(otp);
  });

  it('accepts an OTP once and returns a session token', async () => {
    const { registry } = await setup();
    const otp = await registry.issueOtp('w1');
    const session = await registry.authenticate('w1', { otp });
    expect(session).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(await refusal(registry.authenticate('w1', { otp }))).toBe('UNAUTHENTICATED');
  });

  it('refuses an expired OTP', async () => {
    const { registry, advance } = await setup();
    const otp = await registry.issueOtp('w1');
    advance(300_001);
    expect(await refusal(registry.authenticate('w1', { otp }))).toBe('UNAUTHENTICATED');
  });

  it('refuses an OTP presented with another worker id, and burns it', async () => {
    const { registry } = await setup();
    const otp = await registry.issueOtp('w1');
    expect(await refusal(registry.authenticate('w2', { otp }))).toBe('UNAUTHENTICATED');
    expect(await refusal(registry.authenticate('w1', { otp }))).toBe('UNAUTHENTICATED');
  });

  it('accepts the session token for a reconnect, and only the latest one', async () => {
    const { registry } = await setup();
    const first = await registry.authenticate('w1', { otp: await registry.issueOtp('w1') });
    const second = await registry.authenticate('w1', { sessionToken: first });
    expect(await refusal(registry.authenticate('w1', { sessionToken: first }))).toBe('UNAUTHENTICATED');
    expect(await refusal(registry.authenticate('w1', { sessionToken: second }))).toBe('accepted');
    expect(await refusal(registry.authenticate('w1', {}))).toBe('UNAUTHENTICATED');
  });
});
