/** A Tenant resource's spec in the hub store's terms. */
import type { DeletionPolicy, TenantSpec as StoreTenantSpec } from '../../hub/store/index.js';
import type { TenantSpec } from '../api/v1alpha1.js';

export function storeDeletionPolicy(policy: TenantSpec['deletionPolicy']): DeletionPolicy {
  return policy === 'Delete' ? 'delete' : 'retain';
}

export function storeTenantSpec(spec: TenantSpec): StoreTenantSpec {
  return {
    status: spec.suspended ? 'suspended' : 'active',
    maxBranches: spec.maxBranches ?? null,
    rateLimit: spec.rateLimit ? { messagesPerSecond: spec.rateLimit.messagesPerSecond, burst: spec.rateLimit.burst } : null,
    conflictStrategy: spec.conflictStrategy === 'BranchPriority' ? 'branch-priority' : 'last-write-wins',
    branchPriority: spec.branchPriority ?? [],
    deletionPolicy: storeDeletionPolicy(spec.deletionPolicy),
    // Same field names as the store's; a route without a filter carries none.
    routes: (spec.routes ?? []).map((r) => ({ name: r.name, tables: [...r.tables], from: [...r.from], to: [...r.to], ...(r.filter ? { filter: r.filter } : {}) })),
    tables: (spec.tables ?? []).map((t) => ({
      name: t.name,
      ...(t.merge ? { merge: t.merge === 'Column' ? 'column' : 'row' } : {}),
      additive: [...(t.additive ?? [])],
    })),
  };
}

/** A Branch resource's routing fields in the hub store's terms. */
export function storeBranchRouting(spec: { readonly groups?: readonly string[]; readonly attributes?: Readonly<Record<string, string>> }): {
  groups: string[];
  attributes: Record<string, string>;
} {
  return { groups: [...(spec.groups ?? [])], attributes: { ...(spec.attributes ?? {}) } };
}
