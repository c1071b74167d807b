/**
 * What a branch reports besides its changes: conflicts it resolved (forwarded to the losing
 * writer, held while that one is offline and sent when it connects) and the tables it syncs (kept for the checks of route
 * filters). The connection hands each frame here once it is admitted.
 */
import type { CatalogReport, ConflictNotify, ConflictReport } from '../protocol/index.js';
import type { HubContext } from './context.js';
import type { TenantView } from './directory.js';
import { trimConflict } from './conflict-trim.js';
import { holdNotice, takeNotices } from './notices.js';
import { conflictRecipient } from './routing.js';
import { saveCatalog } from './store/catalog.js';

export interface Reporter {
  readonly tenantId: string;
  readonly branchId: string;
}

/** Counts and audits a conflict, and tells the writer whose change lost, now or when it connects. */
export async function relayConflict(ctx: HubContext, from: Reporter, view: TenantView, frame: ConflictReport, noticeId: string): Promise<void> {
  const { conflict: c, cut } = trimConflict(frame.conflict);
  ctx.metrics.conflicts.inc({ tenant: from.tenantId, table: ctx.metrics.tableLabel(c.table), kind: c.kind ?? 'concurrent' });
  if (cut) ctx.metrics.conflictsCut.inc({ tenant: from.tenantId });
  // The audit log is shared by every tenant: one tenant's flood of conflicts must not fill it.
  if (ctx.conflictAudit.take(from.tenantId)) {
    await ctx.store.audit({ tenantId: from.tenantId, branchId: from.branchId, event: 'conflict.reported', source: from.branchId, detail: { conflict: c } });
  } else {
    ctx.metrics.conflictsUnaudited.inc({ tenant: from.tenantId });
  }
  const to = conflictRecipient(from.branchId, c.loser.origin, view);
  if (!to) return;
  const notice: ConflictNotify = { type: 'conflict.notify', id: noticeId, reported_by: from.branchId, conflict: c };
  // Offline: held in the tenant schema and sent when it connects.
  if (!(await ctx.fanout.sendConflict(from.tenantId, to, notice))) await holdNotice(ctx.pool, view.schema, to, notice);
}

/** Sends the conflict notices held while the branch was offline (and removes them). */
export async function sendHeldNotices(ctx: HubContext, to: Reporter, schema: string, send: (n: ConflictNotify) => void): Promise<void> {
  try {
    for (const notice of await takeNotices(ctx.pool, schema, to.branchId)) send(notice);
  } catch (err) {
    ctx.logger.warn({ err, tenant: to.tenantId, branch: to.branchId }, 'could not send held conflict notices');
  }
}

/** Keeps the columns of the tables a branch syncs, as route filters are checked against them. */
export async function recordCatalog(ctx: HubContext, from: Reporter, view: TenantView, frame: CatalogReport): Promise<void> {
  const written = await saveCatalog(ctx.pool, view.schema, from.branchId, frame.tables);
  if (written > 0) ctx.logger.info({ tenant: from.tenantId, branch: from.branchId, tables: written }, 'the tables this branch syncs are recorded for route checks');
}
