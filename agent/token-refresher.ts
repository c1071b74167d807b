/**
 * Keeps one connection's token fresh: asks for a new one before the current one expires, sends
 * it as `auth.refresh`, and adopts it once the hub answers `auth.refreshed` (until then the old
 * token is the connection's). A failed request is tried again 15–30 s later.
 */
import type { Logger } from 'pino';
import { refreshDelay } from './backoff.js';
import type { TokenGrant } from './token.js';

export interface TokenRefresherDeps {
  readonly fetch: () => Promise<TokenGrant>;
  /** Sends `auth.refresh` with the new token. */
  readonly send: (token: string) => void;
  /** The hub took the new token: it is now the connection's (and the client's, for reconnects). */
  readonly adopted: (grant: TokenGrant) => void;
  readonly log: Logger;
}

export class TokenRefresher {
  private timer: NodeJS.Timeout | undefined;
  private pending: TokenGrant | undefined;

  constructor(
    private grant: TokenGrant,
    private readonly deps: TokenRefresherDeps,
  ) {}

  /** The hub says when the current token expires (hello); schedules the next refresh from it. */
  expiresAt(text: string): void {
    const at = Date.parse(text);
    if (Number.isFinite(at)) this.grant = { ...this.grant, expiresAtMs: at };
    this.schedule(refreshDelay(this.grant.expiresAtMs, Date.now()));
  }

  /** `auth.refreshed`: the hub took the token sent last. */
  refreshed(expiresAt: string): void {
    const at = Date.parse(expiresAt);
    if (this.pending) {
      this.grant = { token: this.pending.token, expiresAtMs: Number.isFinite(at) ? at : this.pending.expiresAtMs };
      this.deps.adopted(this.grant);
      this.pending = undefined;
    }
    this.schedule(refreshDelay(this.grant.expiresAtMs, Date.now()));
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(ms: number): void {
    this.stop();
    this.timer = setTimeout(() => void this.refresh(), Math.min(ms, 2 ** 31 - 1));
    this.timer.unref();
  }

  private async refresh(): Promise<void> {
    try {
      const g = await this.deps.fetch();
      this.pending = g;
      this.deps.send(g.token);
    } catch (err) {
      this.deps.log.warn({ err: (err as Error).message }, 'token refresh failed; retrying');
      this.schedule(15_000 + Math.floor(Math.random() * 15_000));
    }
  }
}
