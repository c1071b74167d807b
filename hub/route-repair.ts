/**
 * Route repair, the I/O half (hub/routes/repair.ts decides): after compaction, reads the log
 * entries folded since the last pass, and for each row of a table that a filtered route carries,
 * compares what every branch received of it with the winner the compacted state now holds. A
 * branch left with a losing version, or without the row it should hold, is sent the winner; one
 * holding a row it should not is sent an eviction. Repairs are log entries targeted at that
 * branch (origin `hub-broker`, negative sequence numbers, so they never meet a branch's or a
 * schema change's), appended with the pass's progress in one transaction, and delivered like any
 * entry (live connections find them at their next log-head poll).
 */
import type pg from 'pg';
import { strategyFor } from '../protocol/conflict.js';
import type { Change, StrategyName, TenantPolicy } from '../protocol/index.js';
import { SCHEMA_ORIGIN, isReservedTable } from '../protocol/schema-entry.js';
import { appendLockKey } from './log.js';
import { heldBefore, plainInsert, repairsFor, winnerOf, type Repair } from './routes/repair.js';
import type { RoutingPolicy } from './routes/policy.js';
import { ADVISORY_KEY_SQL, quoteIdent } from './store/db.js';

export interface RepairView {
  readonly routes: readonly { readonly filter?: string }[];
  readonly routing: RoutingPolicy | null;
  readonly policy: TenantPolicy;
}

export interface RepairResult {
  readonly repairedUpto: number;
  readonly entries: number;
  readonly repairs: number;
}

/** Most log entries replayed per transaction; a longer stretch is replayed a page at a time. */
const PAGE = 20_000;

/** One pass up to the compacted position, a page per transaction. */
export async function repairRoutes(pool: pg.Pool, tenantId: string, schema: string, view: RepairView | null): Promise<RepairResult> {
  if (view === null || view.routing === null || !view.routes.some((r) => r.filter !== undefined)) {
    // Without a filtered route no row can move between subsets: nothing to replay, no lock taken.
    const { rows } = await pool.query<{ upto: string }>(`UPDATE ${quoteIdent(schema)}.meta SET repaired_upto = compacted_upto RETURNING compacted_upto AS upto`);
    return { repairedUpto: Number(rows[0]?.upto ?? 0), entries: 0, repairs: 0 };
  }
  let entries = 0;
  let repairs = 0;
  for (;;) {
    const r = await repairPage(pool, tenantId, schema, view);
    entries += r.entries;
    repairs += r.repairs;
    if (r.done) return { repairedUpto: r.repairedUpto, entries, repairs };
  }
}

async function repairPage(pool: pg.Pool, tenantId: string, schema: string, view: RepairView | null): Promise<RepairResult & { done: boolean }> {
  const s = quoteIdent(schema);
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    // The append lock first: repairs take offsets in order, and two instances never repair at once.
    await c.query(`SELECT pg_advisory_xact_lock(${ADVISORY_KEY_SQL})`, [appendLockKey(tenantId)]);
    const meta = await c.query<{ from: string; upto: string }>(`SELECT coalesce(repaired_upto, compacted_upto) AS from, compacted_upto AS upto FROM ${s}.meta`);
    const from = Number(meta.rows[0]?.from ?? 0);
    const compacted = Number(meta.rows[0]?.upto ?? 0);
    const to = Math.min(compacted, from + PAGE);
    const routing = view?.routing ?? null;
    let found: Repair[] = [];
    let entries = 0;
    if (routing !== null && to > from) {
      const log = await c.query<{ key: string; change: Change }>(
        `SELECT (change->>'table') || ' ' || (change->'pk')::text AS key, change FROM ${s}.log
          WHERE pos > $1 AND pos <= $2 AND target IS NULL AND origin <> $3 ORDER BY pos`,
        [from, to, SCHEMA_ORIGIN],
      );
      entries = log.rows.length;
      found = await repairsOf(c, s, routing, view?.policy ?? null, log.rows, to < compacted, to);
    }
    if (found.length > 0) await appendRepairs(c, s, found);
    await c.query(`UPDATE ${s}.meta SET repaired_upto = $1`, [Math.max(from, to)]);
    await c.query('COMMIT');
    return { repairedUpto: Math.max(from, to), entries, repairs: found.length, done: to >= compacted };
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    c.release();
  }
}

/**
 * The repairs for the rows of filtered, whole-row tables among `rows` (the log after `from`, up
 * to `to`). The state may be folded past `to` (compaction ran further than this page): versions
 * of later changes are then left out, as the stretch and what came before it is what is replayed.
 */
async function repairsOf(c: pg.PoolClient, s: string, routing: RoutingPolicy, policy: TenantPolicy | null, rows: readonly { key: string; change: Change }[], beyond: boolean, to: number): Promise<Repair[]> {
  const columnLevel = new Set((policy?.tables ?? []).filter((t) => t.merge === 'column').map((t) => t.name));
  const byKey = new Map<string, Change[]>();
  for (const r of rows) {
    const t = r.change.table;
    // Column-level rows merge; the winner-takes-the-row replay does not hold for them.
    if (isReservedTable(t) || columnLevel.has(t) || !routing.filters(t)) continue;
    const list = byKey.get(r.key);
    if (list) list.push(r.change);
    else byKey.set(r.key, [r.change]);
  }
  if (byKey.size === 0) return [];
  const state = await c.query<{ key: string; versions: Change[] }>(`SELECT key, versions FROM ${s}.state WHERE key = ANY($1::text[])`, [[...byKey.keys()]]);
  const later = beyond ? await laterVersions(c, s, state.rows.flatMap((r) => r.versions), to) : new Set<string>();
  const strategies = await tableStrategies(c, s, [...new Set([...byKey.values()].map((l) => (l[0] as Change).table))]);
  const out: Repair[] = [];
  for (const row of state.rows) {
    const changes = byKey.get(row.key) as Change[];
    const table = (changes[0] as Change).table;
    const st = policy === null ? strategyFor({ conflict_strategy: 'last-write-wins', branch_priority: [] }) : strategyFor(policy, strategies.get(table));
    const versions = later.size === 0 ? row.versions : row.versions.filter((v) => !later.has(`${v.origin}/${v.seq}`));
    if (plainInsert(changes, versions)) continue;
    const winner = winnerOf(versions, st);
    if (winner) out.push(...repairsFor(routing, changes, winner, st, heldBefore(routing, versions, changes, st)).repairs);
  }
  return out;
}

/** The versions among `versions` whose log entry comes after `to`, as `origin/seq`. */
async function laterVersions(c: pg.PoolClient, s: string, versions: readonly Change[], to: number): Promise<Set<string>> {
  const { rows } = await c.query<{ origin: string; seq: string }>(
    `SELECT l.origin, l.origin_seq AS seq FROM ${s}.log l, ROWS FROM (unnest($1::text[]), unnest($2::bigint[])) AS v(origin, seq)
      WHERE l.origin = v.origin AND l.origin_seq = v.seq AND l.pos > $3`,
    [versions.map((v) => v.origin), versions.map((v) => v.seq), to],
  );
  return new Set(rows.map((r) => `${r.origin}/${r.seq}`));
}

/** Per-table conflict strategies the branches reported (catalog.report), where a table overrides the tenant's. */
async function tableStrategies(c: pg.PoolClient, s: string, tables: readonly string[]): Promise<Map<string, StrategyName>> {
  const { rows } = await c.query<{ tbl: string; strategy: StrategyName }>(`SELECT tbl, strategy FROM ${s}.catalog WHERE tbl = ANY($1::text[]) AND strategy IS NOT NULL`, [tables]);
  return new Map(rows.map((r) => [r.tbl, r.strategy]));
}

/** Appends the repairs, each targeted at its branch; the caller holds the append lock. */
async function appendRepairs(c: pg.PoolClient, s: string, repairs: readonly Repair[]): Promise<void> {
  await c.query(
    `WITH r AS (SELECT setval('${s}.log_pos_seq', nextval('${s}.log_pos_seq') + $1 - 1) AS last)
     INSERT INTO ${s}.log (pos, origin, origin_seq, target, change)
     SELECT r.last - $1 + x.i, $2, -(r.last - $1 + x.i), x.target, x.e
       FROM r, ROWS FROM (jsonb_array_elements($4::jsonb), unnest($3::text[])) WITH ORDINALITY AS x(e, target, i)`,
    [repairs.length, SCHEMA_ORIGIN, repairs.map((r) => r.branch), JSON.stringify(repairs.map((r) => r.change))],
  );
}

