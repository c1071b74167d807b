import type { Queryable } from './db.js';

export interface AuditEntry {
  readonly tenantId?: string | null;
  readonly branchId?: string | null;
  /** Dotted event name, e.g. `auth.failed`, `route.refused`, `conflict.reported`, `tenant.deleted`. */
  readonly event: string;
  /** Where it came from: a source address, `admin`, `operator`. */
  readonly source?: string | null;
  readonly detail?: Record<string, unknown>;
}

export interface AuditRecord extends AuditEntry {
  readonly id: string;
  readonly at: Date;
}

export async function appendAudit(q: Queryable, e: AuditEntry): Promise<void> {
  await q.query(
    'INSERT INTO hub.audit_log (tenant_id, branch_id, event, source, detail) VALUES ($1, $2, $3, $4, $5)',
    [e.tenantId ?? null, e.branchId ?? null, e.event, e.source ?? null, JSON.stringify(e.detail ?? {})],
  );
}

export interface AuditQuery {
  readonly tenantId?: string;
  readonly event?: string;
  readonly limit?: number;
}

/** Newest first. */
export async function listAudit(q: Queryable, query: AuditQuery = {}): Promise<AuditRecord[]> {
  const { rows } = await q.query<{
    id: string;
    at: Date;
    tenant_id: string | null;
    branch_id: string | null;
    event: string;
    source: string | null;
    detail: Record<string, unknown>;
  }>(
    `SELECT id, at, tenant_id, branch_id, event, source, detail FROM hub.audit_log
      WHERE ($1::text IS NULL OR tenant_id = $1) AND ($2::text IS NULL OR event = $2)
      ORDER BY id DESC LIMIT $3`,
    [query.tenantId ?? null, query.event ?? null, Math.min(query.limit ?? 100, 1000)],
  );
  return rows.map((r) => ({
    id: r.id,
    at: r.at,
    tenantId: r.tenant_id,
    branchId: r.branch_id,
    event: r.event,
    source: r.source,
    detail: r.detail,
  }));
}
