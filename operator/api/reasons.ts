/**
 * Reasons of the `Ready` condition: one place, so docs, Argo CD health checks and alerts can
 * name them. Each says whether it is transient (Argo CD shows Progressing) or a fault to fix
 * (Degraded).
 */
export const Reason = {
  /** Reconciled and serving. */
  Ready: 'Ready',
  /** Reconciled; the Tenant or Branch is suspended on purpose. */
  Suspended: 'Suspended',
  /** The hub's Deployment has fewer ready replicas than it should. */
  Progressing: 'Progressing',
  /** Being deleted; the finalizer is cleaning up. */
  Deleting: 'Deleting',
  /** A Hub being deleted waits for the Tenants that reference it. */
  TenantsRemaining: 'TenantsRemaining',
  /** A Branch waits for its Tenant to be reconciled. */
  TenantNotReady: 'TenantNotReady',
  HubNotFound: 'HubNotFound',
  TenantNotFound: 'TenantNotFound',
  /** The Secret (or key in it) named by a Hub's spec is missing. */
  SecretNotFound: 'SecretNotFound',
  /** The hub database cannot be reached or answered with an error. */
  DatabaseUnavailable: 'DatabaseUnavailable',
  MigrationFailed: 'MigrationFailed',
  /** The Tenant already has spec.maxBranches branches. */
  MaxBranchesExceeded: 'MaxBranchesExceeded',
  /** The branch's keys were revoked outside the operator; change spec.credentials.rotate to issue one. */
  KeyRevoked: 'KeyRevoked',
  /** The hub database refused a value (store error `invalid`). */
  InvalidSpec: 'InvalidSpec',
  /** The hub refused one of a Tenant's spec.schemaChanges; the message names it and says why. */
  SchemaChangeRefused: 'SchemaChangeRefused',
  /** A published schema change has other SQL in a Tenant's spec.schemaChanges now. */
  SchemaChangeModified: 'SchemaChangeModified',
  /** A Kubernetes API call failed. */
  ApiError: 'ApiError',
  /** Anything else; the message says what. */
  ReconcileError: 'ReconcileError',
} as const;

export type ReasonName = (typeof Reason)[keyof typeof Reason];

/** Reasons that resolve by themselves; Argo CD health checks report them as Progressing. */
export const TRANSIENT_REASONS: readonly ReasonName[] = [Reason.Progressing, Reason.Deleting, Reason.TenantsRemaining, Reason.TenantNotReady];
