/**
 * The agent's JWT: the one in use, kept across reconnects while it has more than a minute left,
 * and fresh ones from `POST /auth/token` (agent/token.ts), each request counted by result.
 */
import type { Counter } from 'prom-client';
import { requestToken, TokenError, type TokenGrant, type TokenRequest } from './token.js';

export class TokenSource {
  private grant: TokenGrant | undefined;

  constructor(
    private readonly request: TokenRequest,
    private readonly requests: Counter<'result'>,
  ) {}

  /** The token in use, or a new one when it is about to expire. */
  async current(): Promise<TokenGrant> {
    if (this.grant && this.grant.expiresAtMs - Date.now() > 60_000) return this.grant;
    this.grant = await this.fetch();
    return this.grant;
  }

  /** A new token (for `auth.refresh`); `use` it once the hub took it. */
  async fetch(): Promise<TokenGrant> {
    try {
      const g = await requestToken(this.request);
      this.requests.inc({ result: 'ok' });
      return g;
    } catch (err) {
      this.requests.inc({ result: err instanceof TokenError ? err.kind : 'error' });
      throw err;
    }
  }

  use(g: TokenGrant): void {
    this.grant = g;
  }

  /** The hub refused the token: the next connection asks for a new one. */
  forget(): void {
    this.grant = undefined;
  }
}
