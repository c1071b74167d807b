/**
 * How many hub replicas a Hub needs: pure, so it can be tested exhaustively. Every branch keeps
 * one WebSocket open, so the load is the number of branches that may connect.
 */
import type { Branch, Hub, Tenant } from '../api/v1alpha1.js';

export interface ReplicaPolicy {
  readonly min: number;
  readonly max: number;
  readonly connectionsPerReplica: number;
  /** Capacity factor over the current number of branches, at least 1. */
  readonly headroom: number;
}

export interface ReplicaDecision {
  /** What the Deployment gets: `needed` clamped to [min, max]. */
  readonly replicas: number;
  /** ceil(branches × headroom / connectionsPerReplica), before clamping. */
  readonly needed: number;
  /** True when max keeps the Deployment below what the branches need. */
  readonly capped: boolean;
}

// Products like 30 × 1.1 are 33.000000000000004 in binary floating point; without this
// tolerance ceil() would ask for a replica too many exactly at a boundary.
const EPSILON = 1e-9;

export function desiredReplicas(policy: ReplicaPolicy, branches: number): ReplicaDecision {
  const load = Math.max(0, Math.floor(branches)) * Math.max(1, policy.headroom);
  const needed = load === 0 ? 0 : Math.ceil(load / Math.max(1, policy.connectionsPerReplica) - EPSILON);
  const replicas = Math.min(policy.max, Math.max(policy.min, needed));
  return { replicas, needed, capped: needed > policy.max };
}

const live = (o: { metadata: { deletionTimestamp?: string } }): boolean => o.metadata.deletionTimestamp === undefined;

/**
 * The Branches that count towards a Hub's load: those of its Tenants (same namespace), where
 * neither the Branch nor its Tenant is suspended or being deleted.
 */
export function connectingBranches(hub: Hub, tenants: readonly Tenant[], branches: readonly Branch[]): { tenants: number; branches: number } {
  const ns = hub.metadata.namespace;
  const mine = tenants.filter((t) => t.metadata.namespace === ns && t.spec.hubRef.name === hub.metadata.name);
  const active = new Set(mine.filter((t) => live(t) && !t.spec.suspended).map((t) => t.metadata.name));
  const count = branches.filter(
    (b) => b.metadata.namespace === ns && active.has(b.spec.tenantRef.name) && live(b) && !b.spec.suspended,
  ).length;
  return { tenants: mine.length, branches: count };
}
