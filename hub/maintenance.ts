/**
 * Background work per tenant, on a timer: fold the log into the compacted state, repair what
 * routing got wrong for rows that moved while edited (route-repair.ts), apply retention, and refresh the log-depth and branch-lag gauges. Several instances may run it at
 * once; compaction takes a per-tenant lock, and pruning is idempotent.
 */
import type { HubContext } from './context.js';
import { compact } from './compactor.js';
import * as log from './log.js';
import { prune } from './retention.js';
import { repairRoutes } from './route-repair.js';

export interface MaintenanceReport {
  readonly tenant: string;
  /** Branches with a cursor in the tenant's log (the ones given a lag gauge). */
  readonly branches: readonly string[];
  readonly compactedUpto: number;
  readonly prunedUpto: number;
  readonly deleted: number;
}

export async function maintainTenant(ctx: HubContext, tenantId: string, schema: string): Promise<MaintenanceReport> {
  const { config, metrics } = ctx;
  const c = await compact(ctx.pool, tenantId, schema, { paced: true });
  const view = await ctx.directory.get(tenantId);
  const r = await repairRoutes(ctx.pool, tenantId, schema, view);
  if (r.repairs > 0) {
    metrics.routeRepairs.inc({ tenant: tenantId }, r.repairs);
    ctx.logger.info({ tenant: tenantId, repairs: r.repairs, entries: r.entries }, 'route repair: branches sent the winning version or an eviction of rows that moved while edited');
  }
  const p = await prune(ctx.pool, schema, {
    maxAgeSeconds: config.retentionMaxAgeSeconds,
    maxEntries: config.retentionMaxEntries,
  });
  if (p.deleted > 0) metrics.pruned.inc({ tenant: tenantId }, p.deleted);
  const cur = await log.cursors(ctx.pool, schema);
  metrics.logDepth.set({ tenant: tenantId }, cur.head - cur.prunedUpto);
  for (const b of cur.branches) metrics.branchLag.set({ tenant: tenantId, branch: b.branchId }, b.lag);
  return {
    tenant: tenantId,
    branches: cur.branches.map((b) => b.branchId),
    compactedUpto: c.compactedUpto,
    prunedUpto: p.prunedUpto,
    deleted: p.deleted,
  };
}

/** The gauge label sets set by the last pass, per hub: the ones to remove when they disappear. */
const reported = new WeakMap<HubContext, Map<string, readonly string[]>>();

/** One pass over every tenant; errors of one tenant do not stop the others. */
export async function maintainAll(ctx: HubContext): Promise<MaintenanceReport[]> {
  const reports: MaintenanceReport[] = [];
  const before = reported.get(ctx) ?? new Map<string, readonly string[]>();
  const now = new Map<string, readonly string[]>();
  for (const t of await ctx.store.listTenants()) {
    // A shutdown waits for this pass: the tenants left wait for the next instance instead.
    if (ctx.draining) return reports;
    try {
      const r = await maintainTenant(ctx, t.id, t.schemaName);
      reports.push(r);
      now.set(t.id, r.branches);
    } catch (err) {
      ctx.logger.warn({ err, tenant: t.id }, 'maintenance failed');
      // Not measured this time: keep what it showed rather than drop it.
      const last = before.get(t.id);
      if (last) now.set(t.id, last);
    }
  }
  // A deleted tenant or branch must not stay on dashboards (and in alerts) with its last lag.
  for (const [tenant, branches] of before) {
    const still = now.get(tenant);
    if (!still) ctx.metrics.logDepth.remove({ tenant });
    for (const branch of branches) if (!still?.includes(branch)) ctx.metrics.branchLag.remove({ tenant, branch });
  }
  reported.set(ctx, now);
  return reports;
}
