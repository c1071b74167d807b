/** The JSON shapes of the admin API (documented in docs/api.md); dates are ISO 8601 strings. */
import type { ConnectionInfo } from '../../registry.js';
import type { Branch, Route, Tenant } from '../../store/index.js';
import type { Location } from '../../engine/types.js';

const iso = (d: Date | null): string | null => (d === null ? null : d.toISOString());

export interface TenantJson {
  readonly id: string;
  readonly status: Tenant['status'];
  readonly maxBranches: number | null;
  readonly rateLimit: Tenant['rateLimit'];
  readonly conflictStrategy: Tenant['conflictStrategy'];
  readonly branchPriority: readonly string[];
  readonly deletionPolicy: Tenant['deletionPolicy'];
  /** Empty: every change goes to every other branch. */
  readonly routes: readonly Route[];
  /** Tables merged by column (the rest merge by row). */
  readonly tables: Tenant['tables'];
  readonly schemaName: string;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export function tenantJson(t: Tenant): TenantJson {
  return {
    id: t.id,
    status: t.status,
    maxBranches: t.maxBranches,
    rateLimit: t.rateLimit,
    conflictStrategy: t.conflictStrategy,
    branchPriority: t.branchPriority,
    deletionPolicy: t.deletionPolicy,
    routes: t.routes,
    tables: t.tables,
    schemaName: t.schemaName,
    createdAt: t.createdAt.toISOString(),
    updatedAt: t.updatedAt.toISOString(),
  };
}

export interface BranchJson {
  readonly tenantId: string;
  readonly id: string;
  readonly status: Branch['status'];
  readonly hasKey: boolean;
  readonly keyRotatedAt: string | null;
  readonly previousKeyValidUntil: string | null;
  readonly lastSeenAt: string | null;
  readonly groups: readonly string[];
  readonly attributes: Readonly<Record<string, string>>;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export function branchJson(b: Branch): BranchJson {
  return {
    tenantId: b.tenantId,
    id: b.id,
    status: b.status,
    hasKey: b.hasKey,
    keyRotatedAt: iso(b.keyRotatedAt),
    previousKeyValidUntil: iso(b.previousKeyValidUntil),
    lastSeenAt: iso(b.lastSeenAt),
    groups: b.groups,
    attributes: b.attributes,
    createdAt: b.createdAt.toISOString(),
    updatedAt: b.updatedAt.toISOString(),
  };
}

/** Where a branch is connected, from the engine's location registry (every instance). */
export interface Presence {
  /** Null when not known (the registry is unreachable and another instance may hold it). */
  readonly online: boolean | null;
  /** Instance holding the branch's socket; null when offline. */
  readonly instance: string | null;
  /** When that instance claimed the branch (the connection's start); null when offline. */
  readonly connectedAt: string | null;
}

export function presence(loc: Location | undefined, complete = true): Presence {
  return loc
    ? { online: true, instance: loc.server, connectedAt: new Date(loc.at).toISOString() }
    : { online: complete ? false : null, instance: null, connectedAt: null };
}

/** Live details of a connection, known only to the instance that holds it. */
export type ConnectionDetails = Omit<ConnectionInfo, 'tenantId' | 'branchId' | 'instanceId'>;

export function connectionDetails(c: ConnectionInfo): ConnectionDetails {
  return {
    connectedAt: c.connectedAt,
    remoteAddress: c.remoteAddress,
    codec: c.codec,
    mode: c.mode,
    scanned: c.scanned,
    applied: c.applied,
    delivered: c.delivered,
    bufferedBytes: c.bufferedBytes,
    snapshot: c.snapshot,
  };
}
