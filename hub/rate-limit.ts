/**
 * Token buckets. The arithmetic is pure and shared by the memory engine and (mirrored in Lua)
 * the Redis engine; `RateLimiter` is the thin shell that picks the buckets for a frame.
 */
import type { Rate } from './config.js';
import type { Engine } from './engine/types.js';

export interface BucketState {
  readonly tokens: number;
  /** Milliseconds. */
  readonly at: number;
}

export interface BucketRequest {
  /** Redis key suffix / map key, e.g. `t:acme` or `b:acme/store-1`. */
  readonly key: string;
  readonly rate: Rate;
}

export type TakeResult =
  | { readonly allowed: true }
  | { readonly allowed: false; /** Index of the first bucket that refused. */ readonly refusedBy: number; readonly retryAfterMs: number };

/** The bucket's content at `now`: refilled at `rate.perSecond`, capped at `rate.burst`. An absent bucket is full. */
export function refill(state: BucketState | undefined, now: number, rate: Rate): BucketState {
  if (!state) return { tokens: rate.burst, at: now };
  const elapsed = Math.max(0, now - state.at);
  return { tokens: Math.min(rate.burst, state.tokens + (elapsed * rate.perSecond) / 1000), at: Math.max(now, state.at) };
}

/**
 * Takes `cost` tokens from every bucket or from none: a frame refused by the tenant's bucket
 * does not use up its branch's tokens. Returns the new states (unchanged when refused).
 */
export function takeAll(
  states: readonly (BucketState | undefined)[],
  rates: readonly Rate[],
  now: number,
  cost = 1,
): { result: TakeResult; states: BucketState[] } {
  const filled = rates.map((rate, i) => refill(states[i], now, rate));
  for (let i = 0; i < filled.length; i++) {
    const b = filled[i] as BucketState;
    const rate = rates[i] as Rate;
    if (b.tokens < cost) {
      const retryAfterMs = Math.ceil(((cost - b.tokens) * 1000) / rate.perSecond);
      return { result: { allowed: false, refusedBy: i, retryAfterMs }, states: filled };
    }
  }
  return { result: { allowed: true }, states: filled.map((b) => ({ tokens: b.tokens - cost, at: b.at })) };
}

/** How long an idle bucket takes to fill up again, after which it can be forgotten. */
export function fullAfterMs(rate: Rate): number {
  return Math.ceil((rate.burst * 1000) / rate.perSecond);
}

/** Picks the buckets for each kind of request and asks the engine. */
export class RateLimiter {
  constructor(
    private readonly engine: Engine,
    private readonly defaults: { tenant: Rate | undefined; branch: Rate | undefined; auth: Rate | undefined },
  ) {}

  /** One frame of a branch: its tenant's bucket (the tenant's own limit, else the default) and its own. */
  async frame(tenantId: string, branchId: string, tenantRate: Rate | null): Promise<TakeResult & { scope?: 'tenant' | 'branch' }> {
    const buckets: BucketRequest[] = [];
    const scopes: ('tenant' | 'branch')[] = [];
    const tRate = tenantRate ?? this.defaults.tenant;
    if (tRate) {
      buckets.push({ key: `t:${tenantId}`, rate: tRate });
      scopes.push('tenant');
    }
    if (this.defaults.branch) {
      buckets.push({ key: `b:${tenantId}/${branchId}`, rate: this.defaults.branch });
      scopes.push('branch');
    }
    if (buckets.length === 0) return { allowed: true };
    const r = await this.engine.take(buckets);
    return r.allowed ? r : { ...r, scope: scopes[r.refusedBy] };
  }

  /** One `/auth/token` attempt from a source address. */
  async auth(source: string): Promise<TakeResult> {
    if (!this.defaults.auth) return { allowed: true };
    return this.engine.take([{ key: `a:${source}`, rate: this.defaults.auth }]);
  }
}
