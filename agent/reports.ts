/**
 * Conflict reports for the hub. Every conflict and dead letter is recorded at the branch first;
 * a report is sent from that record and marked sent, so a report survives an agent restart
 * between the apply commit and the send.
 */
import type { Change, Conflict, Row, StrategyName, VersionRef, VersionVector } from '../protocol/messages.js';
import type { Version } from '../protocol/conflict.js';
import { normalize } from '../protocol/version-vector.js';
import type { Queryable } from './db.js';

export interface PendingReport {
  readonly kind: 'conflict' | 'dead-letter';
  /** Row id in `hubsync.conflicts` or `hubsync.dead_letter`. */
  readonly id: string;
  readonly conflict: Conflict;
}

export function versionRef(v: Version): VersionRef {
  return { origin: v.origin, hlc: v.hlc, vv: normalize(v.vv), deleted: v.deleted };
}

export function incomingVersion(c: Change): Version {
  return { vv: normalize(c.vv), hlc: c.hlc, origin: c.origin, deleted: c.op === 'delete' };
}

/** Stands for "no version here" in a dead-letter report (the wire format needs one). */
function noVersion(branch: string): VersionRef {
  return { origin: branch, hlc: '0000000000000000', vv: {}, deleted: false };
}

const MAX_REASON = 1024;

export function concurrentReport(input: {
  table: string;
  pk: Row;
  strategy: StrategyName;
  winner: Version;
  loser: Version;
  winnerRow: Row | null;
  loserRow: Row | null;
  detectedAt: Date;
}): Conflict {
  return {
    kind: 'concurrent',
    table: input.table,
    pk: input.pk,
    strategy: input.strategy,
    winner: versionRef(input.winner),
    loser: versionRef(input.loser),
    winner_row: input.winnerRow,
    loser_row: input.loserRow,
    detected_at: input.detectedAt.toISOString(),
  };
}

/** A dead letter as a conflict of kind `dead-letter`: the incoming change lost to "cannot apply". */
export function deadLetterReport(input: {
  change: Change;
  reason: string;
  strategy: StrategyName;
  local: Version | null;
  branch: string;
  detectedAt: Date;
}): Conflict {
  return {
    kind: 'dead-letter',
    reason: input.reason.slice(0, MAX_REASON),
    table: input.change.table,
    pk: input.change.pk,
    strategy: input.strategy,
    winner: input.local ? versionRef(input.local) : noVersion(input.branch),
    loser: versionRef(incomingVersion(input.change)),
    winner_row: null,
    loser_row: input.change.row,
    detected_at: input.detectedAt.toISOString(),
  };
}

interface StoredVersion {
  vv: VersionVector;
  hlc: string;
  origin: string;
  deleted: boolean;
}

/** Reports recorded but not yet sent, oldest first. */
export async function unreported(q: Queryable, branch: string, limit = 100): Promise<PendingReport[]> {
  const c = await q.query<{
    id: string;
    tbl: string;
    pk: Row;
    strategy: StrategyName;
    winner: 'local' | 'incoming';
    local_version: StoredVersion;
    incoming_version: StoredVersion;
    local_row: Row | null;
    incoming_row: Row | null;
    detected_at: Date;
  }>(
    `SELECT id::text AS id, tbl, pk, strategy, winner, local_version, incoming_version, local_row, incoming_row, detected_at
     FROM hubsync.conflicts WHERE report AND reported_at IS NULL ORDER BY id LIMIT $1`,
    [limit],
  );
  const d = await q.query<{
    id: string;
    change: Change;
    reason: string;
    strategy: StrategyName;
    local_version: StoredVersion | null;
    failed_at: Date;
  }>(
    `SELECT id::text AS id, change, reason, strategy, local_version, failed_at
     FROM hubsync.dead_letter WHERE reported_at IS NULL ORDER BY id LIMIT $1`,
    [limit],
  );
  const out: PendingReport[] = c.rows.map((r) => {
    const localWins = r.winner === 'local';
    return {
      kind: 'conflict',
      id: r.id,
      conflict: concurrentReport({
        table: r.tbl,
        pk: r.pk,
        strategy: r.strategy,
        winner: localWins ? r.local_version : r.incoming_version,
        loser: localWins ? r.incoming_version : r.local_version,
        winnerRow: localWins ? r.local_row : r.incoming_row,
        loserRow: localWins ? r.incoming_row : r.local_row,
        detectedAt: r.detected_at,
      }),
    };
  });
  for (const r of d.rows) {
    out.push({
      kind: 'dead-letter',
      id: r.id,
      conflict: deadLetterReport({
        change: r.change,
        reason: r.reason,
        strategy: r.strategy,
        local: r.local_version,
        branch,
        detectedAt: r.failed_at,
      }),
    });
  }
  return out;
}

/** Marks reports as sent to the hub. */
export async function markReported(q: Queryable, reports: readonly Pick<PendingReport, 'kind' | 'id'>[]): Promise<void> {
  const conflicts = reports.filter((r) => r.kind === 'conflict').map((r) => r.id);
  const dead = reports.filter((r) => r.kind === 'dead-letter').map((r) => r.id);
  if (conflicts.length > 0) {
    await q.query(`UPDATE hubsync.conflicts SET reported_at = now() WHERE id = ANY($1::bigint[])`, [conflicts]);
  }
  if (dead.length > 0) {
    await q.query(`UPDATE hubsync.dead_letter SET reported_at = now() WHERE id = ANY($1::bigint[])`, [dead]);
  }
}
