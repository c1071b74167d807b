import type { StrategyName, TenantPolicy, VersionVector } from './messages.js';
import { compare, merge, normalize } from './version-vector.js';

/** The version of one row at one replica: who wrote it last, when, and what it has seen. */
export interface Version {
  readonly vv: VersionVector;
  /** Encoded HLC (fixed-width hex, so string order is time order). */
  readonly hlc: string;
  readonly origin: string;
  /** A tombstone: the row was deleted at this version. */
  readonly deleted: boolean;
}

export type Strategy =
  | { readonly name: 'last-write-wins' }
  /**
   * `priority` lists branches from highest to lowest; unlisted branches rank below all listed ones.
   * A write ranks as the best branch in its history (see `rank`), ties by HLC then branch id.
   */
  | { readonly name: 'branch-priority'; readonly priority: readonly string[] };

export type Decision =
  /** Incoming is newer (or the row is unknown here): write it. */
  | { readonly action: 'apply'; readonly version: Version }
  /** Incoming is older than (`stale`) or the same as (`duplicate`) what is here: change nothing. */
  | { readonly action: 'skip'; readonly reason: 'stale' | 'duplicate' }
  /**
   * Written concurrently: the strategy picked `winner`. `version` is what the row's version
   * becomes (the winner's, with both vectors merged); when the winner is `local` only the
   * version changes, not the row.
   */
  | { readonly action: 'conflict'; readonly winner: 'local' | 'incoming'; readonly version: Version };

/**
 * Rank of a version under `branch-priority` (0 is best): the best rank among the branches in its
 * history (its vector) and its origin. A write made after seeing a higher-priority branch's write
 * inherits that rank.
 *
 * Ranking by the origin alone does not converge. A replica keeps one version per row: once hq's
 * write beat store-1's concurrent one, only hq's row is left. If store-2 then edits hq's row (it
 * had seen hq's write only), the edit supersedes hq's write and, ranked by origin, should now lose
 * to store-1's write, whose row this replica no longer has; a replica that saw the edit before
 * store-1's write picks store-1's. With inherited ranks a causally later write never ranks below
 * what it supersedes, so the order agrees with causality (as HLC order does for last-write-wins)
 * and every replica ends with the best write overall, whatever order the writes arrive in.
 */
function rank(priority: readonly string[], v: Version): number {
  let best = priority.length;
  const consider = (branch: string): void => {
    const i = priority.indexOf(branch);
    if (i !== -1 && i < best) best = i;
  };
  consider(v.origin);
  for (const [branch, n] of Object.entries(v.vv)) if (n > 0) consider(branch);
  return best;
}

/**
 * Total order between two concurrent versions: true when `a` beats `b`. Being a total order
 * (not just a pairwise rule) is what makes every replica pick the same winner whatever order
 * changes arrive in.
 */
export function beats(a: Version, b: Version, strategy: Strategy): boolean {
  if (strategy.name === 'branch-priority') {
    const ra = rank(strategy.priority, a);
    const rb = rank(strategy.priority, b);
    if (ra !== rb) return ra < rb;
  }
  if (a.hlc !== b.hlc) return a.hlc > b.hlc;
  if (a.origin !== b.origin) return a.origin > b.origin;
  // Same writer and instant: cannot happen for real writes; decide by content so it is still total.
  if (a.deleted !== b.deleted) return !a.deleted;
  return JSON.stringify(normalize(a.vv)) > JSON.stringify(normalize(b.vv));
}

/** Decides what a replica holding `local` does with `incoming`. Pure. */
export function resolve(local: Version | null, incoming: Version, strategy: Strategy): Decision {
  if (local === null) return { action: 'apply', version: incoming };
  switch (compare(incoming.vv, local.vv)) {
    case 'after':
      return { action: 'apply', version: incoming };
    case 'before':
      return { action: 'skip', reason: 'stale' };
    case 'equal':
      return { action: 'skip', reason: 'duplicate' };
    case 'concurrent': {
      const incomingWins = beats(incoming, local, strategy);
      const w = incomingWins ? incoming : local;
      return {
        action: 'conflict',
        winner: incomingWins ? 'incoming' : 'local',
        version: { vv: normalize(merge(local.vv, incoming.vv)), hlc: w.hlc, origin: w.origin, deleted: w.deleted },
      };
    }
  }
}

/** The strategy for a table: a per-table override if configured, else the tenant's. */
export function strategyFor(policy: TenantPolicy, override?: StrategyName): Strategy {
  const name = override ?? policy.conflict_strategy;
  return name === 'branch-priority'
    ? { name, priority: policy.branch_priority }
    : { name: 'last-write-wins' };
}
