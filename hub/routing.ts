/**
 * Pure decisions about who may send what to whom, and who receives an appended batch.
 * Tenant and branch always come from the verified JWT; nothing here does I/O.
 */
import type { Change, SyncBatch } from '../protocol/index.js';
import type { TenantView } from './directory.js';
import type { Location } from './engine/types.js';
import { HubError } from './errors.js';

export interface Sender {
  readonly tenantId: string;
  readonly branchId: string;
}

/** Why a frame was refused, for metrics and the audit log. `cross_tenant` is reported as `unknown_target`. */
export type RefusalReason = 'batch_too_large' | 'forged_origin' | 'unstorable' | 'self_target' | 'unknown_target';

export type Admission =
  | { readonly ok: true; readonly target: string | null }
  | { readonly ok: false; readonly reason: RefusalReason; readonly error: HubError };

// PostgreSQL's jsonb cannot hold U+0000, and JSON text with a lone surrogate is rejected.
// eslint-disable-next-line no-control-regex
const UNSTORABLE = /\u0000|\p{Surrogate}/u;

/** The first string (key or value) in `v` that PostgreSQL's jsonb cannot store, as a path. */
export function unstorablePath(v: unknown, path = ''): string | null {
  if (typeof v === 'string') return UNSTORABLE.test(v) ? path || '.' : null;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const p = unstorablePath(v[i], `${path}.${i}`);
      if (p !== null) return p;
    }
    return null;
  }
  if (v !== null && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      if (UNSTORABLE.test(k)) return `${path}.<key>`;
      const p = unstorablePath(x, `${path}.${k.slice(0, 40)}`);
      if (p !== null) return p;
    }
  }
  return null;
}

function refuse(reason: RefusalReason, error: HubError): Admission {
  return { ok: false, reason, error };
}

/**
 * Whether a batch from `sender` may be appended: not too many changes, every change from the
 * sender itself (no forged origins), storable, and a `to` naming another branch of the
 * sender's own tenant. `to` is looked up in the sender's tenant only, so another tenant's
 * branch is simply unknown here.
 */
export function admitBatch(sender: Sender, batch: SyncBatch, tenant: TenantView, maxChanges: number): Admission {
  if (batch.changes.length > maxChanges) {
    return refuse('batch_too_large', new HubError('batch_too_large', `batch of ${batch.changes.length} changes exceeds ${maxChanges}`));
  }
  for (let i = 0; i < batch.changes.length; i++) {
    const c = batch.changes[i] as Change;
    if (c.origin !== sender.branchId) {
      return refuse('forged_origin', new HubError('forged_origin', `changes.${i}.origin: must be the sending branch (${sender.branchId})`));
    }
  }
  const bad = unstorablePath(batch.changes);
  if (bad !== null) {
    return refuse('unstorable', new HubError('invalid_frame', `changes${bad}: NUL characters and lone surrogates cannot be stored`));
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
