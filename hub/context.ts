/**
 * Everything one hub instance shares between its parts, built once by `app.ts`. HTTP modules
 * (the admin API in `http/admin.ts`) receive this object.
 */
import type pg from 'pg';
import type { TokenService } from './auth/jwt.js';
import type { Batcher } from './batcher.js';
import type { HubConfig } from './config.js';
import type { Directory } from './directory.js';
import type { Engine } from './engine/types.js';
import type { TriageRelay } from './triage.js';
import type { AuditBudget } from './conflict-trim.js';
import type { Fanout } from './fanout.js';
import type { ConnectPosition } from './log.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import type { RateLimiter } from './rate-limit.js';
import type { ConnectionRegistry, HubConnection } from './registry.js';
import type { SnapshotService } from './snapshot.js';
import type { HubStore } from './store/index.js';

/** Counts work that a graceful shutdown must let finish (appends and their acks). */
export class InFlight {
  private n = 0;
  private waiters: (() => void)[] = [];

  get count(): number {
    return this.n;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    this.n++;
    try {
      return await fn();
    } finally {
      if (--this.n === 0) for (const w of this.waiters.splice(0)) w();
    }
  }

  /** Resolves when nothing is in flight. */
  idle(): Promise<void> {
    return this.n === 0 ? Promise.resolve() : new Promise((resolve) => this.waiters.push(resolve));
  }
}

export interface HubContext {
  readonly config: HubConfig;
  readonly instanceId: string;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly pool: pg.Pool;
  readonly store: HubStore;
  readonly engine: Engine;
  readonly directory: Directory;
  readonly registry: ConnectionRegistry<HubConnection>;
  readonly fanout: Fanout;
  /** Dead-letter and conflict actions asked of branches through the admin API. */
  readonly triage: TriageRelay;
  /** Audit entries of conflict reports each tenant may still write (hub/conflict-trim.ts). */
  readonly conflictAudit: AuditBudget;
  readonly limiter: RateLimiter;
  readonly tokens: TokenService;
  readonly snapshots: SnapshotService;
  readonly inflight: InFlight;
  /** Cursor and head for hello, batched per tenant schema. */
  readonly positions: Batcher<string, ConnectPosition>;
  /** `last_seen_at` writes at connect and close, batched: [tenant, branch]. */
  readonly lastSeen: Batcher<readonly [string, string], void>;
  /** Set when a graceful shutdown began: no new connections, no new frames. */
  draining: boolean;
}
