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
  };
}
