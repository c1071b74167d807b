/**
 * Folds the tenant log into the compacted state that snapshots are served from. Per row the
 * state keeps the maximal versions (an antichain under the version-vector order): that is
 * independent of the order entries are folded in and of any conflict strategy, so the hub
 * never resolves conflicts itself; a bootstrapping agent resolves them with its own engine.
 */
import type pg from 'pg';
import { vv, type Change } from '../protocol/index.js';
import { ADVISORY_KEY_SQL } from './store/db.js';
import { quoteIdent } from './store/index.js';

/** What the fold looks at: a version's vector, clock and origin. */
interface Versioned {
  readonly vv: Change['vv'];
  readonly hlc: string;
  readonly origin: string;
}

/** Deterministic order among versions with equal vectors, and of the kept set. */
function later(a: Change, b: Change): boolean {
  if (a.hlc !== b.hlc) return a.hlc > b.hlc;
  if (a.origin !== b.origin) return a.origin > b.origin;
  return JSON.stringify(a) > JSON.stringify(b);
}

/** A change as kept in the state: the transaction marker means nothing outside its batch. */
export function asVersion(c: Change): Change {
  if (c.tx_end === undefined) return c;
  const { tx_end: _drop, ...rest } = c;
  return rest;
}

/**
 * The maximal versions of a row after `incoming`: dropped when a kept version dominates it;
 * otherwise added, removing the kept versions it dominates. Pure; `kept` must be an antichain,
 * and `isLater` a strict total order on distinct versions.
 */
function foldMaximal<T extends Versioned>(kept: readonly T[], incoming: T, isLater: (a: T, b: T) => boolean): T[] {
  const out: T[] = [];
  for (const k of kept) {
    const ord = vv.compare(incoming.vv, k.vv);
    if (ord === 'before') return [...kept];
    if (ord === 'equal') {
      // The same version twice (a resend under a new seq): keep one, the same one everywhere.
      if (!isLater(incoming, k)) return [...kept];
      continue;
    }
    if (ord === 'concurrent') out.push(k);
  }
  out.push(incoming);
  return out.sort((a, b) => (isLater(a, b) ? 1 : -1));
}

/** `foldMaximal` of whole changes (the reference the compactor's folding of references follows). */
export function foldVersion(kept: readonly Change[], incoming: Change): Change[] {
  return foldMaximal(kept, asVersion(incoming), later);
}

/**
 * A version as the compactor folds it: its vector, clock, origin and sequence number, and where
 * its body is (a log position, or an index into the row's current state). Bodies stay in the
 * database: reading them into JavaScript and writing them back cost half of the hub database's
 * CPU at full relay load.
 */
export interface VersionRef extends Versioned {
  readonly seq: number;
  readonly ref: { readonly p: number } | { readonly i: number };
}

/** `later` for references: (origin, seq) is unique in a tenant log, so this order is total. */
function laterRef(a: VersionRef, b: VersionRef): boolean {
  if (a.hlc !== b.hlc) return a.hlc > b.hlc;
  if (a.origin !== b.origin) return a.origin > b.origin;
  return a.seq > b.seq;
}

export function foldRef(kept: readonly VersionRef[], incoming: VersionRef): VersionRef[] {
  return foldMaximal(kept, incoming, laterRef);
}

export interface CompactResult {
  /** False when another instance was compacting this tenant. */
  readonly ran: boolean;
  readonly compactedUpto: number;
  readonly entries: number;
}

/**
 * A paced pass (the background one) rests as long as each page took while fewer entries than
 * this wait. Compaction costs the hub database more per entry than the append (28 against 19 µs
 * of statement time in a relay run): folded at full speed during a burst, it took that CPU from
 * the appends and deliveries, and at a steady 5,000 changes/s the relay's p99 delivery latency
 * was 42–58 ms instead of 23–37 (npm run bench:hub -- relay). So a burst is folded later, at
 * half speed: the log keeps what is not yet folded (retention prunes only below it) and a
 * snapshot folds everything first, unpaced. Only a backlog of a million entries (50 s of
 * 20,000 changes/s, about 1 GB of log) makes the background pass run at full speed.
 */
const PACE_BELOW = 1_000_000;

export function compactLockKey(tenantId: string): string {
  return `hub-broker:compact:${tenantId}`;
}

/**
 * Folds log entries after `meta.compacted_upto` into `state`, a page per transaction, under a
 * session advisory lock so that one instance at a time compacts a tenant. Targeted entries are
 * point-to-point and not part of the state, but compaction moves past them.
 */
export async function compact(pool: pg.Pool, tenantId: string, schema: string, options: { pageSize?: number; paced?: boolean } = {}): Promise<CompactResult> {
  const { pageSize = 1000, paced = false } = options;
  const s = quoteIdent(schema);
  const client = await pool.connect();
  try {
    const { rows: lock } = await client.query<{ ok: boolean }>(
      `SELECT pg_try_advisory_lock(${ADVISORY_KEY_SQL}) AS ok`,
      [compactLockKey(tenantId)],
    );
    if (!lock[0]?.ok) {
      const m = await client.query<{ c: string }>(`SELECT compacted_upto AS c FROM ${s}.meta`);
      return { ran: false, compactedUpto: Number(m.rows[0]?.c ?? 0), entries: 0 };
    }
    try {
      let entries = 0;
      for (;;) {
        const t0 = performance.now();
        const r = await compactPage(client, s, pageSize);
        entries += r.entries;
        if (r.entries < pageSize) return { ran: true, compactedUpto: r.compactedUpto, entries };
        if (paced && r.behind < PACE_BELOW) await new Promise((done) => setTimeout(done, performance.now() - t0));
      }
    } finally {
      await client.query(`SELECT pg_advisory_unlock(${ADVISORY_KEY_SQL})`, [compactLockKey(tenantId)]).catch(() => undefined);
    }
  } finally {
    client.release();
  }
}

/** What the fold needs of a stored version (`v`, a jsonb expression): not its body. */
const metaOf = (v: string): string => `jsonb_build_object('vv', ${v}->'vv', 'hlc', ${v}->'hlc', 'origin', ${v}->'origin', 'seq', ${v}->'seq')`;

/** `behind`: log entries after this page still to fold (by offsets, so an upper bound). */
async function compactPage(c: pg.PoolClient, s: string, pageSize: number): Promise<{ entries: number; compactedUpto: number; behind: number }> {
  await c.query('BEGIN');
  try {
    const meta = await c.query<{ c: string; head: string | null }>(
      `SELECT compacted_upto AS c, (SELECT max(pos) FROM ${s}.log) AS head FROM ${s}.meta FOR UPDATE`,
    );
    const from = Number(meta.rows[0]?.c ?? 0);
    const head = Number(meta.rows[0]?.head ?? 0);
    // Only what the fold needs; the bodies stay in the database (see VersionRef). `key` is the
    // state's primary key: table and key as one bytewise-compared text (tenant migration 4).
    const log = await c.query<{ pos: string; target: string | null; key: string; tbl: string; pk: unknown; vv: Change['vv']; hlc: string; origin: string; seq: string }>(
      `SELECT pos, target, (change->>'table') || ' ' || (change->'pk')::text AS key, change->>'table' AS tbl, change->'pk' AS pk,
              change->'vv' AS vv, change->>'hlc' AS hlc, change->>'origin' AS origin, origin_seq AS seq
         FROM ${s}.log WHERE pos > $1 ORDER BY pos LIMIT $2`,
      [from, pageSize],
    );
    if (log.rows.length === 0) {
      await c.query('COMMIT');
      return { entries: 0, compactedUpto: from, behind: 0 };
    }
    const broadcast = log.rows.filter((r) => r.target === null);
    const state = new Map<string, VersionRef[]>();
    if (broadcast.length > 0) {
      const existing = await c.query<{ key: string; metas: { vv: Change['vv']; hlc: string; origin: string; seq: number }[] }>(
        `SELECT s.key,
                CASE WHEN jsonb_array_length(s.versions) = 1
                     THEN jsonb_build_array(${metaOf('s.versions->0')})
                     ELSE (SELECT jsonb_agg(${metaOf('e.v')} ORDER BY e.i)
                             FROM jsonb_array_elements(s.versions) WITH ORDINALITY AS e(v, i)) END AS metas
           FROM ${s}.state s WHERE s.key = ANY($1::text[])`,
        [[...new Set(broadcast.map((r) => r.key))]],
      );
      for (const r of existing.rows) {
        state.set(
          r.key,
          (r.metas ?? []).map((m, i) => ({ vv: m.vv, hlc: m.hlc, origin: m.origin, seq: Number(m.seq), ref: { i } })),
        );
      }
    }
    const existed = new Set(state.keys());
    const touched = new Map<string, { tbl: string; pk: unknown; pos: number }>();
    for (const r of broadcast) {
      const pos = Number(r.pos);
      state.set(r.key, foldRef(state.get(r.key) ?? [], { vv: r.vv, hlc: r.hlc, origin: r.origin, seq: Number(r.seq), ref: { p: pos } }));
      touched.set(r.key, { tbl: r.tbl, pk: r.pk, pos });
    }
    const updates: ({ key: string; pos: number } & ({ refs: VersionRef['ref'][] } | { p: number }))[] = [];
    const inserts: { key: string; tbl: string; pk: unknown; refs: VersionRef['ref'][]; pos: number }[] = [];
    for (const [key, t] of touched) {
      const refs = (state.get(key) ?? []).map((v) => v.ref);
      // One version from the log (the usual update): its position alone, without the general case's aggregate.
      const only = refs.length === 1 && 'p' in (refs[0] as VersionRef['ref']) ? (refs[0] as { p: number }).p : null;
      if (existed.has(key)) updates.push(only === null ? { key, refs, pos: t.pos } : { key, p: only, pos: t.pos });
      else inserts.push({ key, tbl: t.tbl, pk: t.pk, refs, pos: t.pos });
    }
    // Each kept version's body: from the log (without its transaction marker) or, for rows that
    // had a state, from the row's versions before this statement. Under the compaction lock the
    // rows read above are the rows there are, so no upsert is needed: an update for the rows
    // that existed (one lookup serves the read and the write) and a plain insert for new ones.
    const bodyAt = (pos: string) => `(SELECT l.change - 'tx_end' FROM ${s}.log l WHERE l.pos = ${pos})`;
    const body = bodyAt(`(e.r->>'p')::bigint`);
    if (updates.length > 0) {
      await c.query(
        `UPDATE ${s}.state o
            SET versions = CASE WHEN x.p IS NOT NULL THEN jsonb_build_array(${bodyAt('x.p')})
                                ELSE (SELECT jsonb_agg(CASE WHEN e.r ? 'p' THEN ${body} ELSE o.versions -> ((e.r->>'i')::int) END ORDER BY e.n)
                                        FROM jsonb_array_elements(x.refs) WITH ORDINALITY AS e(r, n)) END,
                pos = x.pos
           FROM jsonb_to_recordset($1::jsonb) AS x(key text, p bigint, refs jsonb, pos bigint)
          WHERE o.key = x.key`,
        [JSON.stringify(updates)],
      );
    }
    if (inserts.length > 0) {
      await c.query(
        `INSERT INTO ${s}.state (key, tbl, pk, versions, pos)
         SELECT x.key, x.tbl, x.pk, (SELECT jsonb_agg(${body} ORDER BY e.n) FROM jsonb_array_elements(x.refs) WITH ORDINALITY AS e(r, n)), x.pos
           FROM jsonb_to_recordset($1::jsonb) AS x(key text, tbl text, pk jsonb, refs jsonb, pos bigint)`,
        [JSON.stringify(inserts)],
      );
    }
    const upto = Number(log.rows[log.rows.length - 1]?.pos);
    await c.query(`UPDATE ${s}.meta SET compacted_upto = $1`, [upto]);
    await c.query('COMMIT');
    return { entries: log.rows.length, compactedUpto: upto, behind: Math.max(0, head - upto) };
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
