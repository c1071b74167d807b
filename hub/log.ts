/**
 * The tenant log in PostgreSQL: append (the hot path), read pages for a branch, cursors, head
 * and lag. Every function takes the tenant's schema name, which callers take from the verified
 * JWT's tenant, so a query can only ever touch the caller's tenant.
 */
import type pg from 'pg';
import type { Change, LogEntry } from '../protocol/index.js';
import { quoteIdent, type Queryable } from './store/index.js';
import { advisoryKey } from './store/db.js';
import { queryPrepared } from './store/prepared.js';

export interface AppendResult {
  /** Offset of each change of the batch, in batch order (the original offset for a resent change). */
  readonly offsets: number[];
  /** Entries this append added, in offset order (empty when everything was a duplicate). */
  readonly added: LogEntry[];
  readonly duplicates: number;
  /**
   * The offsets this append reserved, `first..last`: the added entries lie in it; the others
   * (reserved for what turned out to be duplicates) are never used. Null when nothing was added.
   */
  readonly range: { readonly first: number; readonly last: number } | null;
}

export function appendLockKey(tenantId: string): string {
  return `hub-broker:log:${tenantId}`;
}

export interface BatchToAppend {
  readonly changes: readonly Change[];
  /** One target branch, or null for the whole tenant. */
  readonly target: string | null;
}

/**
 * Appends a batch in one transaction under the tenant's advisory lock. Holding the lock while
 * taking offsets makes them commit in order, so a reader that sees offset n sees every offset
 * below n. Idempotent on (origin, seq): a change already stored keeps its offset and is not
 * stored again. Every change's origin must be `origin` (checked by the caller).
 */
export async function append(
  pool: pg.Pool,
  tenantId: string,
  schema: string,
  origin: string,
  changes: readonly Change[],
  target: string | null,
): Promise<AppendResult> {
  const [result] = await appendMany(pool, tenantId, schema, origin, [{ changes, target }]);
  return result as AppendResult;
}

/**
 * Appends several batches of one origin in one transaction (group commit: one lock, one
 * commit), in order; each batch gets its own contiguous range of offsets. All or none.
 *
 * One statement, so one round trip on the usual path: it takes the lock, reserves the offsets
 * and inserts, and commits on its own (the lock is held until that commit). Only when something
 * was a duplicate (a resend, or a seq repeated) does a second query ask where each change is.
 * The usual append has none: change i (from 1) then took offset last - n + i, so only the count
 * of inserted rows comes back, not a row per change.
 */
export async function appendMany(
  pool: Queryable,
  tenantId: string,
  schema: string,
  origin: string,
  batches: readonly BatchToAppend[],
): Promise<AppendResult[]> {
  const s = quoteIdent(schema);
  const all = batches.flatMap((b) => b.changes);
  const n = all.length;
  const targets = batches.flatMap((b) => b.changes.map(() => b.target));
  const { rows } = await queryPrepared<{ last: string; inserted: string }>(
    pool,
    `WITH l AS (SELECT pg_advisory_xact_lock(${advisoryKey('$5')})),
     r AS (SELECT setval('${s}.log_pos_seq', nextval('${s}.log_pos_seq') + $1 - 1) AS last FROM l),
     ins AS (
       INSERT INTO ${s}.log (pos, origin, origin_seq, target, change)
       SELECT r.last - $1 + x.i, $2, (x.e->>'seq')::bigint, x.target, x.e
         FROM r, ROWS FROM (jsonb_array_elements($4::jsonb), unnest($3::text[])) WITH ORDINALITY AS x(e, target, i)
       ON CONFLICT (origin, origin_seq) DO NOTHING
       RETURNING 1
     )
     SELECT (SELECT last FROM r) AS last, (SELECT count(*) FROM ins) AS inserted`,
    [n, origin, targets, JSON.stringify(all), appendLockKey(tenantId)],
  );
  const last = Number(rows[0]?.last ?? 0);
  let offsetOf: Map<number, number> | undefined;
  if (Number(rows[0]?.inserted) !== n) {
    // Some were stored before (a resend) or repeated: ask where each one is. The offsets this
    // append reserved tell what it added.
    const stored = await pool.query<{ origin_seq: string; pos: string }>(
      `SELECT origin_seq, pos FROM ${s}.log WHERE origin = $1 AND origin_seq = ANY($2::bigint[])`,
      [origin, all.map((c) => c.seq)],
    );
    offsetOf = new Map(stored.rows.map((r) => [Number(r.origin_seq), Number(r.pos)]));
  }
  const results: AppendResult[] = [];
  const seen = new Set<number>();
  let first = last - n + 1;
  for (const b of batches) {
    results.push(batchResult(b.changes, first, offsetOf, seen));
    first += b.changes.length;
  }
  return results;
}

/** What one batch of a group got, its reserved offsets starting at `first`. */
function batchResult(changes: readonly Change[], first: number, offsetOf: ReadonlyMap<number, number> | undefined, seen: Set<number>): AppendResult {
  const n = changes.length;
  const last = first + n - 1;
  if (!offsetOf) {
    return {
      offsets: changes.map((_, i) => first + i),
      added: changes.map((c, i): LogEntry => [first + i, c]),
      duplicates: 0,
      range: n > 0 ? { first, last } : null,
    };
  }
  const added: LogEntry[] = [];
  for (const c of changes) {
    const pos = offsetOf.get(c.seq) as number;
    if (pos >= first && pos <= last && !seen.has(c.seq)) added.push([pos, c]);
    seen.add(c.seq);
  }
  added.sort((x, y) => x[0] - y[0]);
  return {
    offsets: changes.map((c) => offsetOf.get(c.seq) as number),
    added,
    duplicates: n - added.length,
    range: added.length > 0 ? { first, last } : null,
  };
}

// ---------------------------------------------------------------- reading

/** One row read for a branch, before it is cut into a page. */
export interface ReadRow {
  readonly pos: number;
  readonly change: Change;
  /** Size of the change's JSON text, for page byte limits. */
  readonly bytes: number;
  /** Append time, ms since the epoch. */
  readonly at: number;
}

export type Page =
  | {
      readonly kind: 'entries';
      /** Entries for this branch (its own and other targets' entries left out), in offset order. */
      readonly rows: readonly ReadRow[];
      /** Highest offset considered: the next page starts after it. */
      readonly scanned: number;
      readonly head: number;
      /** Whether the page reached the head (nothing more to read right now). */
      readonly atHead: boolean;
    }
  /** `from` is below what retention kept: the branch must bootstrap. */
  | { readonly kind: 'behind'; readonly prunedUpto: number; readonly head: number };

/**
 * Where to cut rows read for a page so that no source transaction is split. Pure.
 * A row ends its transaction if it says so (`tx_end`) or the next row of the same origin in
 * `rows` belongs to another transaction. `full` tells whether more rows follow in the log.
 * Returns how many rows to keep, or `extend` when the first transaction alone fills the page.
 */
export function cutPage(rows: readonly ReadRow[], full: boolean, maxBytes: number): { keep: number } | { extend: true } {
  let n = 0;
  let bytes = 0;
  while (n < rows.length) {
    bytes += (rows[n] as ReadRow).bytes + 24;
    if (n > 0 && bytes > maxBytes) break;
    n++;
  }
  if (n === rows.length && !full) return { keep: n };
  for (let k = n; k >= 1; k--) {
    if (endsTransaction(rows, k - 1)) return { keep: k };
  }
  return { extend: true };
}

function endsTransaction(rows: readonly ReadRow[], i: number): boolean {
  const row = rows[i] as ReadRow;
  if (row.change.tx_end === true) return true;
  for (let j = i + 1; j < rows.length; j++) {
    const next = rows[j] as ReadRow;
    if (next.change.origin === row.change.origin) return next.change.tx !== row.change.tx;
  }
  return false;
}

interface PageQueryRow {
  pruned_upto: string;
  head: string;
  rows: [number, Change, number, number][];
}

/** `own`: the branch's own entries too (with routes, a write of its own may evict a row from it). */
function forBranch(own: boolean): string {
  const targeted = '(target IS NULL OR target = $2)';
  return own ? targeted : `origin <> $2 AND ${targeted}`;
}

/**
 * Reads the next page for `branch` after offset `from`: entries of other origins (or all, `own`),
 * broadcast or targeted at it, at most `limit` rows and about `maxBytes`, whole source transactions.
 * Head and rows come from one statement (one snapshot), so `scanned` never skips an offset
 * that commits later.
 */
export async function readPage(
  q: Queryable,
  schema: string,
  branch: string,
  from: number,
  limit: number,
  maxBytes: number,
  own = false,
): Promise<Page> {
  const s = quoteIdent(schema);
  const { rows } = await q.query<PageQueryRow>(
    `SELECT m.pruned_upto, greatest(m.pruned_upto, (SELECT coalesce(max(pos), 0) FROM ${s}.log)) AS head,
            coalesce((SELECT json_agg(json_build_array(l.pos, l.change, octet_length(l.change::text),
                                      floor(extract(epoch FROM l.appended_at) * 1000)) ORDER BY l.pos)
                        FROM (SELECT pos, change, appended_at FROM ${s}.log
                               WHERE pos > $1 AND ${forBranch(own)} ORDER BY pos LIMIT $3) l), '[]') AS rows
       FROM ${s}.meta m`,
    [from, branch, limit],
  );
  const r = rows[0] as PageQueryRow;
  const head = Number(r.head);
  const prunedUpto = Number(r.pruned_upto);
  if (from < prunedUpto) return { kind: 'behind', prunedUpto, head };
  const read = r.rows.map(([pos, change, bytes, at]) => ({ pos, change, bytes, at }));
  const full = read.length >= limit;
  const cut = cutPage(read, full, maxBytes);
  if ('keep' in cut) {
    const kept = read.slice(0, cut.keep);
    const atHead = cut.keep === read.length && !full;
    const scanned = atHead ? Math.max(head, from) : (kept[kept.length - 1] as ReadRow).pos;
    return { kind: 'entries', rows: kept, scanned, head, atHead };
  }
  // The first transaction is bigger than a page: deliver it whole, with whatever lies between.
  const firstRow = read[0] as ReadRow;
  const ext = await q.query<{ pos: string; change: Change; bytes: number; at: string }>(
    `SELECT pos, change, octet_length(change::text) AS bytes, floor(extract(epoch FROM appended_at) * 1000) AS at
       FROM ${s}.log
      WHERE pos > $1 AND ${forBranch(own)}
        AND pos <= (SELECT max(pos) FROM ${s}.log WHERE origin = $3 AND change->>'tx' = $4 AND pos > $1)
      ORDER BY pos`,
    [from, branch, firstRow.change.origin, firstRow.change.tx],
  );
  const whole = ext.rows.map((x) => ({ pos: Number(x.pos), change: x.change, bytes: x.bytes, at: Number(x.at) }));
  const scanned = (whole[whole.length - 1] ?? firstRow).pos;
  return { kind: 'entries', rows: whole, scanned, head, atHead: scanned >= head };
}

// ---------------------------------------------------------------- cursors, head, lag

export interface BranchPosition {
  /** Highest offset the branch applied. */
  readonly cursor: number;
  readonly head: number;
  readonly prunedUpto: number;
  readonly compactedUpto: number;
}

export async function branchPosition(q: Queryable, schema: string, branch: string): Promise<BranchPosition> {
  const s = quoteIdent(schema);
  const { rows } = await q.query<{ cursor: string; head: string; pruned_upto: string; compacted_upto: string }>(
    `SELECT coalesce((SELECT pos FROM ${s}.cursors WHERE branch_id = $1), 0) AS cursor,
            greatest(m.pruned_upto, (SELECT coalesce(max(pos), 0) FROM ${s}.log)) AS head,
            m.pruned_upto, m.compacted_upto
       FROM ${s}.meta m`,
    [branch],
  );
  const r = rows[0];
  return {
    cursor: Number(r?.cursor ?? 0),
    head: Number(r?.head ?? 0),
    prunedUpto: Number(r?.pruned_upto ?? 0),
    compactedUpto: Number(r?.compacted_upto ?? 0),
  };
}

/** A branch's position when it connects, and whether conflict notices wait for it. */
export interface ConnectPosition extends BranchPosition {
  readonly notices: boolean;
}

/**
 * `branchPosition` of several branches of one tenant in one statement (one snapshot, one head),
 * in the order asked; connections opening together share it (see hub/batcher.ts).
 */
export async function branchPositions(q: Queryable, schema: string, branches: readonly string[]): Promise<ConnectPosition[]> {
  const s = quoteIdent(schema);
  // Prepared, and written so that its plan does not depend on the values: the branch list is
  // one comma-separated text (ids are DNS labels), as unnest($1::text[]) would let each run see
  // the array's length and PostgreSQL would keep planning it afresh, never settling on the
  // generic plan; the cursor lookup is by index per branch (LIMIT 1 keeps it a nested loop).
  const { rows } = await queryPrepared<{ cursor: string; head: string; pruned_upto: string; compacted_upto: string; notices: boolean }>(
    q,
    `SELECT coalesce(c.pos, 0) AS cursor, h.head, h.pruned_upto, h.compacted_upto,
            EXISTS (SELECT 1 FROM ${s}.notices n WHERE n.branch_id = b.branch_id) AS notices
       FROM (SELECT greatest(m.pruned_upto, (SELECT coalesce(max(pos), 0) FROM ${s}.log)) AS head, m.pruned_upto, m.compacted_upto
               FROM ${s}.meta m WHERE m.singleton) h
      CROSS JOIN string_to_table($1::text, ',') WITH ORDINALITY AS b(branch_id, i)
       LEFT JOIN LATERAL (SELECT c.pos FROM ${s}.cursors c WHERE c.branch_id = b.branch_id LIMIT 1) c ON true
      ORDER BY b.i`,
    [branches.join(',')],
  );
  return branches.map((_, i) => {
    const r = rows[i];
    return {
      cursor: Number(r?.cursor ?? 0),
      head: Number(r?.head ?? 0),
      prunedUpto: Number(r?.pruned_upto ?? 0),
      compactedUpto: Number(r?.compacted_upto ?? 0),
      notices: r?.notices === true,
    };
  });
}

/** Highest offset in the log (or the pruned offset when retention emptied it). */
export async function head(q: Queryable, schema: string): Promise<number> {
  const s = quoteIdent(schema);
  const { rows } = await q.query<{ head: string }>(
    `SELECT greatest(m.pruned_upto, (SELECT coalesce(max(pos), 0) FROM ${s}.log)) AS head FROM ${s}.meta m`,
  );
  return Number(rows[0]?.head ?? 0);
}

/** Moves the branch's cursor forward (never back). Returns whether it moved. */
export async function setCursor(q: Queryable, schema: string, branch: string, pos: number): Promise<boolean> {
  const { rowCount } = await queryPrepared(
    q,
    `UPDATE ${quoteIdent(schema)}.cursors SET pos = $2, updated_at = now() WHERE branch_id = $1 AND pos < $2`,
    [branch, pos],
  );
  return (rowCount ?? 0) > 0;
}

export interface CursorInfo {
  readonly branchId: string;
  readonly cursor: number;
  /** Head minus cursor. */
  readonly lag: number;
  readonly updatedAt: Date;
}

/** Every branch's cursor and lag, with the log's head and retention progress (admin API, metrics). */
export async function cursors(
  q: Queryable,
  schema: string,
): Promise<{ head: number; prunedUpto: number; compactedUpto: number; branches: CursorInfo[] }> {
  const s = quoteIdent(schema);
  const meta = await q.query<{ head: string; pruned_upto: string; compacted_upto: string }>(
    `SELECT greatest(m.pruned_upto, (SELECT coalesce(max(pos), 0) FROM ${s}.log)) AS head, m.pruned_upto, m.compacted_upto
       FROM ${s}.meta m`,
  );
  const m = meta.rows[0];
  const headPos = Number(m?.head ?? 0);
  const { rows } = await q.query<{ branch_id: string; pos: string; updated_at: Date }>(
    `SELECT branch_id, pos, updated_at FROM ${s}.cursors ORDER BY branch_id`,
  );
  return {
    head: headPos,
    prunedUpto: Number(m?.pruned_upto ?? 0),
    compactedUpto: Number(m?.compacted_upto ?? 0),
    branches: rows.map((r) => ({
      branchId: r.branch_id,
      cursor: Number(r.pos),
      lag: Math.max(0, headPos - Number(r.pos)),
      updatedAt: r.updated_at,
    })),
  };
}

/** One branch's cursor and lag; null when the branch has no cursor (unknown). */
export async function branchLag(q: Queryable, schema: string, branch: string): Promise<CursorInfo | null> {
  const s = quoteIdent(schema);
  const { rows } = await q.query<{ pos: string; updated_at: Date; head: string }>(
    `SELECT c.pos, c.updated_at, greatest(m.pruned_upto, (SELECT coalesce(max(pos), 0) FROM ${s}.log)) AS head
       FROM ${s}.cursors c, ${s}.meta m WHERE c.branch_id = $1`,
    [branch],
  );
  const r = rows[0];
  if (!r) return null;
  return { branchId: branch, cursor: Number(r.pos), lag: Math.max(0, Number(r.head) - Number(r.pos)), updatedAt: r.updated_at };
}
