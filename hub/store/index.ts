/**
 * Data access for the hub database, shared by the hub and the operator: migrations, tenants
 * (and their schemas), branches, API keys, the audit log, and control notifications.
 */
import type pg from 'pg';
import { DEFAULT_ARGON2, type Argon2Params } from './api-keys.js';
import * as audit from './audit.js';
import * as branches from './branches.js';
import { migrate, type MigrationReport } from './migrations.js';
import * as tenants from './tenants.js';
import type { BranchRouting, RoutingSynced } from '../routes/route.js';

export { StoreError, type StoreErrorCode } from './errors.js';
export { createPool, withTransaction, quoteIdent, type Queryable } from './db.js';
export { DEFAULT_ARGON2, generateApiKey, type Argon2Params } from './api-keys.js';
export { CONTROL_CHANNEL, parseControlEvent, type ControlEvent } from './control.js';
export { tenantSchemaName, TENANT_SCHEMA_VERSION, GLOBAL_SCHEMA_VERSION, type MigrationReport } from './migrations.js';
export { MAX_TENANT_ID } from './tenants.js';
export type { Tenant, TenantSpec, TenantStatus, DeletionPolicy, RateLimit, DeleteTenantResult } from './tenants.js';
export type { Branch, BranchStatus, KeyCheck } from './branches.js';
export type { Route, BranchRouting, RoutingSynced } from '../routes/route.js';
export type { AuditEntry, AuditRecord, AuditQuery } from './audit.js';

export interface HubStoreOptions {
  readonly argon2?: Argon2Params;
  /** Recorded in the audit log as the source of changes made through this store. */
  readonly source?: string;
}

/** One object over a pool, so callers need not pass the pool and cost parameters around. */
export class HubStore {
  readonly argon2: Argon2Params;
  readonly source: string;

  constructor(
    readonly pool: pg.Pool,
    options: HubStoreOptions = {},
  ) {
    this.argon2 = options.argon2 ?? DEFAULT_ARGON2;
    this.source = options.source ?? 'admin';
  }

  migrate(): Promise<MigrationReport> {
    return migrate(this.pool);
  }

  // tenants
  getTenant(id: string) {
    return tenants.getTenant(this.pool, id);
  }
  listTenants() {
    return tenants.listTenants(this.pool);
  }
  createTenant(id: string, spec: tenants.TenantSpec = {}) {
    return tenants.createTenant(this.pool, id, spec, this.source);
  }
  updateTenant(id: string, spec: tenants.TenantSpec) {
    return tenants.updateTenant(this.pool, id, spec, this.source);
  }
  ensureTenant(id: string, spec: tenants.TenantSpec) {
    return tenants.ensureTenant(this.pool, id, spec, this.source);
  }
  suspendTenant(id: string) {
    return tenants.updateTenant(this.pool, id, { status: 'suspended' }, this.source);
  }
  resumeTenant(id: string) {
    return tenants.updateTenant(this.pool, id, { status: 'active' }, this.source);
  }
  deleteTenant(id: string, policy?: tenants.DeletionPolicy) {
    return tenants.deleteTenant(this.pool, id, policy, this.source);
  }

  // branches
  getBranch(tenantId: string, id: string) {
    return branches.getBranch(this.pool, tenantId, id);
  }
  listBranches(tenantId: string) {
    return branches.listBranches(this.pool, tenantId);
  }
  countBranches(tenantId: string) {
    return branches.countBranches(this.pool, tenantId);
  }
  createBranch(tenantId: string, id: string, options: Omit<branches.CreateBranchOptions, 'argon2' | 'source'> = {}) {
    return branches.createBranch(this.pool, tenantId, id, { ...options, argon2: this.argon2, source: this.source });
  }
  suspendBranch(tenantId: string, id: string) {
    return branches.setBranchStatus(this.pool, tenantId, id, 'suspended', this.source);
  }
  resumeBranch(tenantId: string, id: string) {
    return branches.setBranchStatus(this.pool, tenantId, id, 'active', this.source);
  }
  setBranchStatus(tenantId: string, id: string, status: branches.BranchStatus) {
    return branches.setBranchStatus(this.pool, tenantId, id, status, this.source);
  }
  /** Groups and attributes (routing); omitted fields unchanged. */
  setBranchRouting(tenantId: string, id: string, routing: Partial<BranchRouting>) {
    return branches.setBranchRouting(this.pool, tenantId, id, routing, this.source);
  }
  markRoutingSynced(tenantId: string, id: string, synced: RoutingSynced) {
    return branches.markRoutingSynced(this.pool, tenantId, id, synced);
  }
  deleteBranch(tenantId: string, id: string) {
    return branches.deleteBranch(this.pool, tenantId, id, this.source);
  }
  /** `apiKey`: a key the caller generated and already stored; generated here when absent. */
  rotateKey(tenantId: string, id: string, graceSeconds: number, apiKey?: string) {
    return branches.rotateKey(this.pool, tenantId, id, {
      graceSeconds,
      argon2: this.argon2,
      source: this.source,
      ...(apiKey === undefined ? {} : { apiKey }),
    });
  }
  revokeKeys(tenantId: string, id: string) {
    return branches.revokeKeys(this.pool, tenantId, id, this.source);
  }
  verifyBranchKey(tenantId: string, id: string, apiKey: string) {
    return branches.verifyBranchKey(this.pool, tenantId, id, apiKey, this.argon2);
  }
  touchLastSeen(tenantId: string, id: string) {
    return branches.touchLastSeen(this.pool, tenantId, id);
  }
  touchLastSeenMany(pairs: readonly (readonly [string, string])[]) {
    return branches.touchLastSeenMany(this.pool, pairs);
  }

  // audit
  audit(entry: audit.AuditEntry) {
    return audit.appendAudit(this.pool, entry);
  }
  listAudit(query: audit.AuditQuery = {}) {
    return audit.listAudit(this.pool, query);
  }
}
