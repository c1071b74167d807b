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
  /** `priority` lists branches from highest to lowest; unlisted branches rank below all listed ones. */
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

function rank(priority: readonly string[], branch: string): number {
  const i = priority.indexOf(branch);
  return i === -1 ? priority.length : i;
}

/**
 * Total order between two concurrent versions: true when `a` beats `b`. Being a total order
 * (not just a pairwise rule) is what makes every replica pick the same winner whatever order
 * changes arrive in.
 */
export function beats(a: Version, b: Version, strategy: Strategy): boolean {
  if (strategy.name === 'branch-priority') {
    const ra = rank(strategy.priority, a.origin);
    const rb = rank(strategy.priority, b.origin);
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
