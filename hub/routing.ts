/**
 * Pure decisions about who may send what to whom, and who receives an appended batch.
 * Tenant and branch always come from the verified JWT; nothing here does I/O.
 */
import { decodeHlc, encodeHlc, MAX_LOGICAL, type Change, type SyncBatch } from '../protocol/index.js';
import { isReservedTable } from '../protocol/schema-entry.js';
import type { TenantView } from './directory.js';
import type { Location } from './engine/types.js';
import { HubError } from './errors.js';

export interface Sender {
  readonly tenantId: string;
  readonly branchId: string;
}

/** Why a frame was refused, for metrics and the audit log. `cross_tenant` is reported as `unknown_target`. */
export type RefusalReason = 'batch_too_large' | 'clock_ahead' | 'forged_origin' | 'forbidden_table' | 'hub_only_field' | 'self_target' | 'unknown_target';

export type Admission =
  | { readonly ok: true; readonly target: string | null }
  | { readonly ok: false; readonly reason: RefusalReason; readonly error: HubError };

function refuse(reason: RefusalReason, error: HubError): Admission {
  return { ok: false, reason, error };
}

/**
 * Whether a batch from `sender` may be appended: not too many changes, every change from the
 * sender itself (no forged origins), no HLC beyond `maxHlcWallMs`, and a `to` naming another branch of the
 * sender's own tenant. `to` is looked up in the sender's tenant only, so another tenant's
 * branch is simply unknown here. (Text PostgreSQL cannot store, NUL and lone surrogates, is
 * refused by the protocol's validation before a frame gets here.)
 */
export function admitBatch(sender: Sender, batch: SyncBatch, tenant: TenantView, maxChanges: number, maxHlcWallMs = Number.POSITIVE_INFINITY): Admission {
  if (batch.changes.length > maxChanges) {
    return refuse('batch_too_large', new HubError('batch_too_large', `batch of ${batch.changes.length} changes exceeds ${maxChanges}`));
  }
  // HLC text sorts as time does (protocol/hlc.ts): one string comparison per change.
  const maxHlc = Number.isFinite(maxHlcWallMs) ? encodeHlc({ wall: Math.floor(maxHlcWallMs), logical: MAX_LOGICAL }) : null;
  for (let i = 0; i < batch.changes.length; i++) {
    const c = batch.changes[i] as Change;
    if (c.origin !== sender.branchId) {
      return refuse('forged_origin', new HubError('forged_origin', `changes.${i}.origin: must be the sending branch (${sender.branchId})`));
    }
    // An HLC stays in the row's version for good: one far ahead would hold every later write
    // of the row at every branch behind it (and near the top of bigint, make them fail).
    if (maxHlc !== null && c.hlc > maxHlc) {
      const ahead = Math.round((decodeHlc(c.hlc).wall - maxHlcWallMs) / 1000);
      return refuse('clock_ahead', new HubError('clock_ahead', `changes.${i}.hlc: ${c.hlc} is ${ahead} s beyond the hub's clock plus HUB_MAX_CLOCK_SKEW_MS; fix the branch's clock`));
    }
    if (c.evict !== undefined) {
      return refuse('hub_only_field', new HubError('invalid_frame', `changes.${i}.evict: set by the hub only`));
    }
    if (isReservedTable(c.table)) {
      return refuse(
        'forbidden_table',
        new HubError('forbidden_table', `changes.${i}.table: "${c.table.slice(0, 130)}" is Hub-Broker's own; schema changes come through hub-broker schema apply`),
      );
    }
    if (tenant.routing && !tenant.routing.maySend(sender.branchId, c.table)) {
      return refuse(
        'forbidden_table',
        new HubError('forbidden_table', `changes.${i}.table: no route lets branch ${sender.branchId} send "${c.table.slice(0, 130)}"`),
      );
    }
  }
  if (batch.to === undefined) return { ok: true, target: null };
  if (batch.to === sender.branchId) {
    return refuse('self_target', new HubError('forbidden_target', 'to: a branch cannot send to itself'));
  }
  if (!tenant.branches.has(batch.to)) {
    return refuse('unknown_target', new HubError('unknown_target', `to: no branch "${batch.to}" in this tenant`));
  }
  return { ok: true, target: batch.to };
}

/** Whether `branch` receives an entry appended by `origin` for `target` (null = every branch). */
export function receives(branch: string, origin: string, target: string | null): boolean {
  return branch !== origin && (target === null || target === branch);
}

/** Instances other than `self` that hold a branch receiving entries from `origin` for `target`. */
export function serversToNotify(
  locations: ReadonlyMap<string, Location>,
  origin: string,
  target: string | null,
  self: string,
): string[] {
  const servers = new Set<string>();
  if (target !== null) {
    const loc = locations.get(target);
    if (loc && loc.server !== self && target !== origin) servers.add(loc.server);
    return [...servers];
  }
  for (const [branch, loc] of locations) {
    if (loc.server !== self && branch !== origin) servers.add(loc.server);
  }
  return [...servers];
}

/** The branch a conflict notification goes to: the writer whose version lost, if it is another branch. */
export function conflictRecipient(reporter: string, loserOrigin: string, tenant: TenantView): string | null {
  if (loserOrigin === reporter) return null;
  return tenant.branches.has(loserOrigin) ? loserOrigin : null;
}
