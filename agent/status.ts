/** `hub-broker agent status`: what the branch database says about sync, without the hub. */
import type { Queryable } from './db.js';

export interface LatestConflict {
  readonly at: Date;
  readonly table: string;
  readonly pk: unknown;
  readonly winner: string;
  readonly strategy: string;
}

export interface LatestDeadLetter {
  readonly at: Date;
  readonly table: string;
  readonly origin: string;
  readonly seq: number;
  readonly reason: string;
}

export interface AgentStatus {
  readonly installed: boolean;
  readonly tenantId?: string;
  readonly branchId?: string;
  readonly tables?: readonly string[];
  readonly cursor?: number;
  readonly bootstrapped?: boolean;
  readonly lastAckAt?: Date | null;
  readonly lastApplyAt?: Date | null;
  /** Captured changes not yet acknowledged by the hub. */
  readonly pending?: number;
  /** Wall-clock time of the oldest pending change (from its HLC). */
  readonly oldestPendingAt?: Date | null;
  readonly conflicts?: { readonly total: number; readonly unreported: number; readonly latest: LatestConflict | null };
  readonly deadLetters?: { readonly total: number; readonly unreported: number; readonly latest: LatestDeadLetter | null };
  readonly schemaVersion?: number;
  /** The schema change the incoming stream stopped at, and why. */
  readonly schemaBlocked?: { readonly version: number; readonly error: string; readonly since: string; readonly attempts: number } | null;
}

export async function readStatus(q: Queryable): Promise<AgentStatus> {
  const exists = await q.query<{ ok: boolean }>(`SELECT to_regclass('hubsync.meta') IS NOT NULL AS ok`);
  if (exists.rows[0]?.ok !== true) return { installed: false };
  const meta = await q.query<{
    tenant_id: string;
    branch_id: string;
    cursor: string;
    bootstrapped: boolean;
    last_ack_at: Date | null;
    last_apply_at: Date | null;
    schema_version: number;
    schema_blocked: AgentStatus['schemaBlocked'];
  }>(`SELECT tenant_id, branch_id, "cursor"::text AS cursor, bootstrapped, last_ack_at, last_apply_at, schema_version, schema_blocked
        FROM hubsync.meta CROSS JOIN hubsync.apply_state CROSS JOIN hubsync.send_state`);
  const m = meta.rows[0];
  if (!m) return { installed: false };
  const tables = await q.query<{ tbl: string }>(`SELECT tbl FROM hubsync.tables ORDER BY tbl`);
  const outbox = await q.query<{ pending: number; oldest: string | null }>(
    `SELECT count(*)::int AS pending,
            (min(hlc) >> 16)::text AS oldest
     FROM hubsync.change_log`,
  );
  const conflicts = await q.query<{ total: number; unreported: number }>(
    `SELECT count(*)::int AS total, (count(*) FILTER (WHERE report AND reported_at IS NULL))::int AS unreported FROM hubsync.conflicts`,
  );
  const latestConflict = await q.query<{ at: Date; tbl: string; pk: unknown; winner: string; strategy: string }>(
    `SELECT detected_at AS at, tbl, pk, winner, strategy FROM hubsync.conflicts ORDER BY id DESC LIMIT 1`,
  );
  const dead = await q.query<{ total: number; unreported: number }>(
    `SELECT count(*)::int AS total, (count(*) FILTER (WHERE reported_at IS NULL))::int AS unreported FROM hubsync.dead_letter`,
  );
  const latestDead = await q.query<{ at: Date; tbl: string; origin: string; seq: string; reason: string }>(
    `SELECT failed_at AS at, tbl, origin, seq::text AS seq, reason FROM hubsync.dead_letter ORDER BY id DESC LIMIT 1`,
  );
  const o = outbox.rows[0];
  const lc = latestConflict.rows[0];
  const ld = latestDead.rows[0];
  return {
    installed: true,
    tenantId: m.tenant_id,
    branchId: m.branch_id,
    tables: tables.rows.map((r) => r.tbl),
    cursor: Number(m.cursor),
    bootstrapped: m.bootstrapped,
    lastAckAt: m.last_ack_at,
    lastApplyAt: m.last_apply_at,
    schemaVersion: m.schema_version,
    schemaBlocked: m.schema_blocked ?? null,
    pending: o?.pending ?? 0,
    oldestPendingAt: o?.oldest ? new Date(Number(o.oldest)) : null,
    conflicts: {
      total: conflicts.rows[0]?.total ?? 0,
      unreported: conflicts.rows[0]?.unreported ?? 0,
      latest: lc ? { at: lc.at, table: lc.tbl, pk: lc.pk, winner: lc.winner, strategy: lc.strategy } : null,
    },
    deadLetters: {
      total: dead.rows[0]?.total ?? 0,
      unreported: dead.rows[0]?.unreported ?? 0,
      latest: ld ? { at: ld.at, table: ld.tbl, origin: ld.origin, seq: Number(ld.seq), reason: ld.reason } : null,
    },
  };
}

function when(d: Date | null | undefined, now: Date): string {
  if (!d) return 'never';
  const s = Math.round((now.getTime() - d.getTime()) / 1000);
  return `${d.toISOString()} (${s >= 0 ? `${s}s ago` : 'in the future'})`;
}

/** Human-readable status, one fact per line. Pure. */
export function formatStatus(s: AgentStatus, now = new Date()): string {
  if (!s.installed) return 'hubsync is not installed in this database (run: hub-broker agent install)';
  const lines = [
    `tenant / branch:   ${s.tenantId} / ${s.branchId}`,
    `tables:            ${(s.tables ?? []).join(', ') || '(none)'}`,
    `cursor:            ${s.cursor}${s.bootstrapped ? '' : ' (not bootstrapped yet)'}`,
    `last applied:      ${when(s.lastApplyAt, now)}`,
    `schema version:    ${s.schemaVersion ?? 0}`,
    ...(s.schemaBlocked
      ? [`  STOPPED at schema change ${s.schemaBlocked.version} since ${s.schemaBlocked.since} (${s.schemaBlocked.attempts} attempts): ${s.schemaBlocked.error}`]
      : []),
    `pending changes:   ${s.pending}`,
    `oldest pending:    ${when(s.oldestPendingAt, now)}`,
    `last ack from hub: ${when(s.lastAckAt, now)}`,
  ];
  const c = s.conflicts;
  lines.push(`conflicts:         ${c?.total ?? 0}${c?.unreported ? ` (${c.unreported} not yet reported)` : ''}`);
  if (c?.latest) {
    lines.push(`  latest:          ${c.latest.at.toISOString()} ${c.latest.table} ${JSON.stringify(c.latest.pk)}, ${c.latest.winner} won (${c.latest.strategy})`);
  }
  const d = s.deadLetters;
  lines.push(`dead letters:      ${d?.total ?? 0}${d?.unreported ? ` (${d.unreported} not yet reported)` : ''}`);
  if (d?.latest) {
    lines.push(`  latest:          ${d.latest.at.toISOString()} ${d.latest.table} from ${d.latest.origin}#${d.latest.seq}: ${d.latest.reason}`);
  }
  return lines.join('\n');
}
