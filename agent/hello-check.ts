/**
 * What the agent checks in the hub's `hello` before it syncs: the protocol version, that the hub
 * greeted this tenant and branch, and that the tenant merges the synced tables as this branch
 * does (protocol/table-merge.ts). Pure; the client closes with the returned refusal.
 */
import { PROTOCOL_VERSION, type Hello } from '../protocol/index.js';
import { mergeDisagreements } from '../protocol/table-merge.js';
import type { TableInfo } from './catalog.js';

export interface Refusal {
  readonly code: 1002 | 1008;
  /** Close reason, and what the client reports as the cause. */
  readonly reason: string;
  /** The log line, and its fields. */
  readonly message: string;
  readonly details: Record<string, unknown>;
}

export function refuseHello(h: Hello, me: { readonly tenantId: string; readonly branchId: string }, tables: ReadonlyMap<string, TableInfo>): Refusal | null {
  if (h.protocol !== PROTOCOL_VERSION) {
    return { code: 1002, reason: 'protocol version mismatch', message: 'the hub speaks another protocol version', details: { hub: h.protocol, agent: PROTOCOL_VERSION } };
  }
  if (h.tenant_id !== me.tenantId || h.branch_id !== me.branchId) {
    return { code: 1008, reason: 'identity mismatch', message: 'the hub greeted another tenant or branch', details: { tenant: h.tenant_id, branch: h.branch_id } };
  }
  // A hub that declares nothing (or predates declarations) is not checked against.
  if (h.policy.tables === undefined) return null;
  const differences = mergeDisagreements(
    [...tables.values()].map((t) => ({ name: t.name, merge: t.merge, additive: [...t.additive] })),
    h.policy.tables,
  );
  if (differences.length === 0) return null;
  return {
    code: 1008,
    reason: 'merge mismatch',
    message: "this branch merges tables otherwise than the tenant declares; make the agent's tables (merge, additive) and the tenant's `tables` agree, then run hub-broker agent install",
    details: { differences },
  };
}
