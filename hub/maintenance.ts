/**
 * Background work per tenant, on a timer: fold the log into the compacted state, apply
 * retention, and refresh the log-depth and branch-lag gauges. Several instances may run it at
 * once; compaction takes a per-tenant lock, and pruning is idempotent.
 */
import type { HubContext } from './context.js';
import { compact } from './compactor.js';
import * as log from './log.js';
import { prune } from './retention.js';

export interface MaintenanceReport {
  readonly tenant: string;
  readonly compactedUpto: number;
  readonly prunedUpto: number;
  readonly deleted: number;
}

export async function maintainTenant(ctx: HubContext, tenantId: string, schema: string): Promise<MaintenanceReport> {
  const { config, metrics } = ctx;
  const c = await compact(ctx.pool, tenantId, schema);
  const p = await prune(ctx.pool, schema, {
    maxAgeSeconds: config.retentionMaxAgeSeconds,
    maxEntries: config.retentionMaxEntries,
  });
  if (p.deleted > 0) metrics.pruned.inc({ tenant: tenantId }, p.deleted);
  const cur = await log.cursors(ctx.pool, schema);
  metrics.logDepth.set({ tenant: tenantId }, cur.head - cur.prunedUpto);
  for (const b of cur.branches) metrics.branchLag.set({ tenant: tenantId, branch: b.branchId }, b.lag);
  return { tenant: tenantId, compactedUpto: c.compactedUpto, prunedUpto: p.prunedUpto, deleted: p.deleted };
}

/** One pass over every tenant; errors of one tenant do not stop the others. */
export async function maintainAll(ctx: HubContext): Promise<MaintenanceReport[]> {
  const reports: MaintenanceReport[] = [];
  for (const t of await ctx.store.listTenants()) {
    try {
      reports.push(await maintainTenant(ctx, t.id, t.schemaName));
    } catch (err) {
      ctx.logger.warn({ err, tenant: t.id }, 'maintenance failed');
    }
  }
  return reports;
}
