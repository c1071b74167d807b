/**
 * Admission of a `sync.batch` with its side effects: the pure decision (routing.ts `admitBatch`),
 * a second look when the target may be brand new, and for a refusal the metric and the audit
 * record (a `to` naming another tenant's branch is recorded as `cross_tenant`).
 */
import { isReservedTable } from '../protocol/schema-entry.js';
import type { SyncBatch } from '../protocol/index.js';
import type { HubContext } from './context.js';
import type { TenantView } from './directory.js';
import { admitBatch, type RefusalReason } from './routing.js';

export interface BatchSender {
  readonly tenantId: string;
  readonly branchId: string;
  readonly remoteAddress: string;
}

/** The batch's target (null: the whole tenant), or throws the refusal after counting and auditing it. */
export async function admit(ctx: HubContext, sender: BatchSender, batch: SyncBatch, view: TenantView): Promise<string | null> {
  const maxHlc = Date.now() + ctx.config.maxClockSkewMs;
  let admission = admitBatch(sender, batch, view, ctx.config.maxChangesPerBatch, maxHlc);
  if (!admission.ok && admission.reason === 'unknown_target') {
    // The target may have been created a moment ago, ahead of its control notification.
    const fresh = await ctx.directory.reload(sender.tenantId);
    if (fresh) admission = admitBatch(sender, batch, fresh, ctx.config.maxChangesPerBatch, maxHlc);
  }
  if (!admission.ok) {
    await refused(ctx, sender, admission.reason, batch, view);
    throw admission.error;
  }
  return admission.target;
}

async function refused(ctx: HubContext, sender: BatchSender, reason: RefusalReason, batch: SyncBatch, view: TenantView): Promise<void> {
  let label: string = reason;
  if (reason === 'batch_too_large') ctx.metrics.limitViolations.inc({ limit: 'changes_per_batch' });
  if (reason === 'unknown_target' && batch.to !== undefined) {
    const elsewhere = await ctx.directory.branchExistsElsewhere(batch.to, sender.tenantId).catch(() => false);
    if (elsewhere) label = 'cross_tenant';
  }
  ctx.metrics.routingRefusals.inc({ reason: label });
  if (reason === 'batch_too_large') return;
  const tables = reason === 'forbidden_table' ? { tables: refusedTables(batch, sender.branchId, view) } : {};
  await ctx.store
    .audit({
      tenantId: sender.tenantId,
      branchId: sender.branchId,
      event: 'route.refused',
      source: sender.remoteAddress,
      detail: { reason: label, to: batch.to ?? null, batch_id: batch.batch_id, ...tables },
    })
    .catch((err: unknown) => ctx.logger.warn({ err }, 'audit write failed'));
}

/** The tables of a batch its sender may not send, for the audit record. */
function refusedTables(batch: SyncBatch, branch: string, view: TenantView): string[] {
  const routing = view.routing;
  return [...new Set(batch.changes.map((c) => c.table))].filter((t) => isReservedTable(t) || (routing !== null && !routing.maySend(branch, t))).slice(0, 20);
}
