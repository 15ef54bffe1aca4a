import { HodeiError } from '../domain/errors';
import type { Clock } from '../ports/clock';
import type { Store } from '../ports/store';
import { hashToken, newToken, sameHash } from './tokens';

/** Settings of a {@link WorkerRegistry}. */
export interface WorkerRegistryOptions {
  /** How long a one-time registration token stays valid; default 5 minutes. */
  otpTtlMs: number;
}

/** What a worker proves itself with: a one-time token on first registration, its session token when it reconnects. */
export interface Credentials {
  /** The one-time registration token its provider passed it (`HODEI_OTP_TOKEN`). */
  otp?: string;
  /** The session token it got from its first registration. */
  sessionToken?: string;
}

/**
 * Issues and checks worker credentials. A one-time token (OTP) is random (256 bits), stored hashed, bound to
 * one worker id, single use and short lived; a successful registration yields a session token for reconnects.
 */
export class WorkerRegistry {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly options: WorkerRegistryOptions,
  ) {}

  /** Creates a one-time token for `workerId`, stores its hash with an expiry `otpTtlMs` from now, and returns the token. */
  async issueOtp(workerId: string): Promise<string> {
    const otp = newToken();
    await this.store.saveToken({ hash: hashToken(otp), workerId, expiresAt: this.clock.now() + this.options.otpTtlMs });
    return otp;
  }

  /**
   * Checks a worker's credentials and returns a fresh session token (its hash is saved on the worker): `sessionToken`
   * when given (a caller that must know the token before the store has it draws it with `newToken`), else a new one.
   * Throws `UNAUTHENTICATED` for an unknown, reused, expired or misbound token.
   */
  async authenticate(workerId: string, credentials: Credentials, sessionToken = newToken()): Promise<string> {
    if (credentials.otp) {
      const token = await this.store.consumeToken(hashToken(credentials.otp));
      if (!token) throw refused(workerId, 'the one-time token is unknown or was already used');
      if (token.workerId !== workerId) throw refused(workerId, 'the one-time token was issued to another worker');
      if (token.expiresAt < this.clock.now()) throw refused(workerId, 'the one-time token has expired');
    } else if (credentials.sessionToken) {
      const worker = await this.store.getWorker(workerId);
      const expected = worker?.sessionTokenHash;
      if (!expected || !sameHash(expected, hashToken(credentials.sessionToken))) {
        throw refused(workerId, 'the session token does not match');
      }
    } else {
      throw refused(workerId, 'no one-time token or session token was presented');
    }
    const updated = await this.store.updateWorker(workerId, {}, { sessionTokenHash: hashToken(sessionToken) });
    if (!updated) throw refused(workerId, 'the worker is unknown');
    return sessionToken;
  }
}

function refused(workerId: string, reason: string): HodeiError {
  return new HodeiError('UNAUTHENTICATED', `worker ${workerId} refused: ${reason}`);
}
