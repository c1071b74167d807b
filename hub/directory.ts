/**
 * What this instance knows of tenants and their branches: status, limits, policy. Loaded per
 * tenant on first use and kept fresh by control notifications and a periodic resync, so the
 * connect path and per-frame routing never query the database for it.
 */
import type { Rate } from './config.js';
import type { TenantPolicy } from '../protocol/index.js';
import { RoutingPolicy } from './routes/policy.js';
import type { BranchRouting, Route, RoutingSynced } from './routes/route.js';
import type { HubStore } from './store/index.js';

export interface TenantView {
  readonly id: string;
  readonly active: boolean;
  readonly schema: string;
  readonly rate: Rate | null;
  /** Every branch of the tenant: whether it is active, its routing, the routing its rows follow. */
  readonly branches: ReadonlyMap<string, BranchEntry>;
  readonly routes: readonly Route[];
  /** The tenant's routes compiled against its branches; null: everything to everyone. */
  readonly routing: RoutingPolicy | null;
  /** What `hello` tells a branch: conflict strategy, branch priority, column-level tables. */
  readonly policy: TenantPolicy;
}

export interface BranchEntry extends Partial<BranchRouting> {
  readonly active: boolean;
  readonly routingSynced?: RoutingSynced | null;
}

export class Directory {
  private readonly tenants = new Map<string, Promise<TenantView | null>>();
  /** The last view each load resolved with, for callers that cannot wait (fan-out). */
  private readonly loaded = new Map<string, TenantView>();

  constructor(private readonly store: HubStore) {}

  /** The tenant as last loaded (from cache when present). */
  get(tenantId: string): Promise<TenantView | null> {
    let p = this.tenants.get(tenantId);
    if (!p) {
      p = this.load(tenantId);
      this.tenants.set(tenantId, p);
      // A failed load is not cached, so the next caller tries again.
      p.catch(() => this.tenants.get(tenantId) === p && this.tenants.delete(tenantId));
    }
    return p;
  }

  /**
   * The tenant, for a branch about to connect. When the cached view does not allow the branch,
   * it is read again once: a branch created (or resumed) a moment ago may not have reached the
   * cache through its control notification yet.
   */
  async forConnect(tenantId: string, branchId: string): Promise<TenantView | null> {
    const view = await this.get(tenantId);
    return Directory.allows(view, branchId) ? view : this.reload(tenantId);
  }

  /** Loads the tenant again; returns the fresh view. */
  reload(tenantId: string): Promise<TenantView | null> {
    const p = this.load(tenantId);
    this.tenants.set(tenantId, p);
    p.catch(() => this.tenants.get(tenantId) === p && this.tenants.delete(tenantId));
    return p;
  }

  forget(tenantId: string): void {
    this.tenants.delete(tenantId);
    this.loaded.delete(tenantId);
  }

  /** The tenant as last loaded, without waiting; undefined when it never was. */
  peek(tenantId: string): TenantView | undefined {
    return this.loaded.get(tenantId);
  }

  cached(): string[] {
    return [...this.tenants.keys()];
  }

  /** Whether a branch of this id exists in another tenant (to tell cross-tenant sends apart in the audit log). */
  async branchExistsElsewhere(branchId: string, tenantId: string): Promise<boolean> {
    const { rowCount } = await this.store.pool.query('SELECT 1 FROM hub.branches WHERE id = $1 AND tenant_id <> $2 LIMIT 1', [
      branchId,
      tenantId,
    ]);
    return (rowCount ?? 0) > 0;
  }

  /** Whether a branch may be connected right now. */
  static allows(view: TenantView | null, branchId: string): boolean {
    return view !== null && view.active && view.branches.get(branchId)?.active === true;
  }

  private async load(tenantId: string): Promise<TenantView | null> {
    const view = await this.read(tenantId);
    if (view) this.loaded.set(tenantId, view);
    else this.loaded.delete(tenantId);
    return view;
  }

  private async read(tenantId: string): Promise<TenantView | null> {
    const tenant = await this.store.getTenant(tenantId);
    if (!tenant) return null;
    const branches = await this.store.listBranches(tenantId);
    return {
      id: tenant.id,
      active: tenant.status === 'active',
      schema: tenant.schemaName,
      rate: tenant.rateLimit ? { perSecond: tenant.rateLimit.messagesPerSecond, burst: tenant.rateLimit.burst } : null,
      branches: new Map(
        branches.map((b) => [b.id, { active: b.status === 'active', groups: b.groups, attributes: b.attributes, routingSynced: b.routingSynced }]),
      ),
      routes: tenant.routes,
      routing: RoutingPolicy.of(tenant.routes, new Map(branches.map((b) => [b.id, { groups: b.groups, attributes: b.attributes }]))),
      policy: {
        conflict_strategy: tenant.conflictStrategy,
        branch_priority: [...tenant.branchPriority],
        // Only when declared: agents that predate the field would refuse a hello carrying it.
        ...(tenant.tables.length > 0 ? { tables: tenant.tables.map((t) => ({ ...t, additive: [...t.additive] })) } : {}),
      },
    };
  }
}
