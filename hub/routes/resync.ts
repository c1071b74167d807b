/**
 * Bringing a branch's rows in line when its routing changed (its groups or attributes, or the
 * tenant's routes): what it should hold now arrives as a snapshot under the new routes, and what
 * it held under the old ones but no longer should goes as evictions, row by row. Only the
 * branch's own subset travels, never the tenant's whole state. Pure.
 *
 * The old routing is the one recorded when the branch was last in line (`routing_synced`);
 * nothing recorded means the branch predates routing and holds everything (full mesh).
 */
import type { Change } from '../../protocol/index.js';
import { RoutingPolicy } from './policy.js';
import type { BranchRouting, Route, RoutingSynced } from './route.js';

/** The routing `branch` is under now. */
export function currentRouting(routes: readonly Route[], branch: BranchRouting): RoutingSynced {
  return { routes, groups: branch.groups, attributes: branch.attributes };
}

/** JSON with object keys sorted: jsonb gives keys back in its own order. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** Whether two routings select the same rows for the branch (recorded null = no routes). */
export function sameRouting(a: RoutingSynced | null, b: RoutingSynced): boolean {
  if (a === null) return b.routes.length === 0;
  if (a.routes.length === 0 && b.routes.length === 0) return true;
  return canonical(a) === canonical(b);
}

export interface Resync {
  /** Whether the branch holds this version under the new routing. */
  readonly holds: (v: Change) => boolean;
  /**
   * Whether a row (its kept versions) is to be evicted: not held now, and held before, or
   * changed after the branch's cursor (it may hold an older version that was its own: the hub
   * cannot tell, and evicting a row it does not hold changes nothing).
   */
  readonly evicts: (versions: readonly Change[], changedSinceCursor: boolean) => boolean;
}

/**
 * The resync of `branch` from `before` to the current routing. Other branches are taken as they
 * are now (their groups decide who sent a row): a change of their groups is their own resync.
 */
export function planResync(
  branch: string,
  before: RoutingSynced | null,
  now: RoutingPolicy | null,
  branches: ReadonlyMap<string, BranchRouting>,
): Resync {
  const then = before === null ? null : RoutingPolicy.of(before.routes, new Map([...branches, [branch, { groups: before.groups, attributes: before.attributes }]]));
  const heldThen = (v: Change): boolean => (then === null ? true : then.holds(branch, v));
  const holds = (v: Change): boolean => (now === null ? true : now.holds(branch, v));
  // Its own rows stay unless a route to it leaves them out (policy.ts decideOwn).
  const keeps = (v: Change): boolean => (now === null ? true : now.keeps(branch, v));
  return {
    holds,
    evicts: (versions, changed) => !versions.some(keeps) && (changed || versions.some(heldThen)),
  };
}

/** What the resync needs of a tenant (the directory's view of it). */
export interface TenantRouting {
  readonly routes: readonly Route[];
  readonly routing: RoutingPolicy | null;
  readonly branches: ReadonlyMap<string, Partial<BranchRouting> & { readonly routingSynced?: RoutingSynced | null }>;
}

function routingOf(t: TenantRouting): Map<string, BranchRouting> {
  return new Map([...t.branches].map(([id, b]) => [id, { groups: b.groups ?? [], attributes: b.attributes ?? {} }]));
}

/** The routing `branch` is under in `t`, and whether its rows follow it (else the resync to bring them there). */
export function routingAtConnect(t: TenantRouting, branch: string): { readonly now: RoutingSynced; readonly resync: Resync | null } {
  const entry = t.branches.get(branch);
  const now = currentRouting(t.routes, { groups: entry?.groups ?? [], attributes: entry?.attributes ?? {} });
  const before = entry?.routingSynced ?? null;
  return { now, resync: sameRouting(before, now) ? null : resyncOf(t, branch, before) };
}

/** The resync of `branch` in `t` from the routing `before` (the current one when it did not change). */
export function resyncOf(t: TenantRouting, branch: string, before: RoutingSynced | null): Resync {
  return planResync(branch, before, t.routing, routingOf(t));
}

/** Compared on each change of the tenant: a branch whose routing changed reconnects and is resynced. */
export function routingKey(t: TenantRouting, branch: string): string {
  const entry = t.branches.get(branch);
  return JSON.stringify(currentRouting(t.routes, { groups: entry?.groups ?? [], attributes: entry?.attributes ?? {} }));
}
