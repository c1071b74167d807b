/**
 * Folds the tenant log into the compacted state that snapshots are served from. Per row the
 * state keeps the maximal versions (an antichain under the version-vector order): that is
 * independent of the order entries are folded in and of any conflict strategy, so the hub
 * never resolves conflicts itself; a bootstrapping agent resolves them with its own engine.
 */
import type pg from 'pg';
import { vv, type Change } from '../protocol/index.js';
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

/** Row key of a change; `pk` comes from jsonb, so its key order is canonical. */
function rowKey(tbl: string, pk: unknown): string {
  return `${tbl}\u0000${JSON.stringify(pk)}`;
}

export interface CompactResult {
  /** False when another instance was compacting this tenant. */
  readonly ran: boolean;
  readonly compactedUpto: number;
  readonly entries: number;
}

export function compactLockKey(tenantId: string): string {
  return `hub-broker:compact:${tenantId}`;
}

/**
 * Folds log entries after `meta.compacted_upto` into `state`, a page per transaction, under a
 * session advisory lock so that one instance at a time compacts a tenant. Targeted entries are
 * point-to-point and not part of the state, but compaction moves past them.
 */
export async function compact(pool: pg.Pool, tenantId: string, schema: string, pageSize = 1000): Promise<CompactResult> {
  const s = quoteIdent(schema);
  const client = await pool.connect();
  try {
    const { rows: lock } = await client.query<{ ok: boolean }>(
      'SELECT pg_try_advisory_lock(hashtextextended($1, 7316)) AS ok',
      [compactLockKey(tenantId)],
    );
    if (!lock[0]?.ok) {
      const m = await client.query<{ c: string }>(`SELECT compacted_upto AS c FROM ${s}.meta`);
      return { ran: false, compactedUpto: Number(m.rows[0]?.c ?? 0), entries: 0 };
    }
    try {
      let entries = 0;
      for (;;) {
        const r = await compactPage(client, s, pageSize);
        entries += r.entries;
        if (r.entries < pageSize) return { ran: true, compactedUpto: r.compactedUpto, entries };
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock(hashtextextended($1, 7316))', [compactLockKey(tenantId)]).catch(() => undefined);
    }
  } finally {
    client.release();
  }
}

async function compactPage(c: pg.PoolClient, s: string, pageSize: number): Promise<{ entries: number; compactedUpto: number }> {
  await c.query('BEGIN');
  try {
    const meta = await c.query<{ c: string }>(`SELECT compacted_upto AS c FROM ${s}.meta FOR UPDATE`);
    const from = Number(meta.rows[0]?.c ?? 0);
    // Only what the fold needs; the bodies stay in the database (see VersionRef).
    const log = await c.query<{ pos: string; target: string | null; tbl: string; pk: unknown; vv: Change['vv']; hlc: string; origin: string; seq: string }>(
      `SELECT pos, target, change->>'table' AS tbl, change->'pk' AS pk, change->'vv' AS vv, change->>'hlc' AS hlc,
              change->>'origin' AS origin, origin_seq AS seq
         FROM ${s}.log WHERE pos > $1 ORDER BY pos LIMIT $2`,
      [from, pageSize],
    );
    if (log.rows.length === 0) {
      await c.query('COMMIT');
      return { entries: 0, compactedUpto: from };
    }
    const broadcast = log.rows.filter((r) => r.target === null);
    const keys = new Map<string, { tbl: string; pk: unknown }>();
    for (const r of broadcast) keys.set(rowKey(r.tbl, r.pk), { tbl: r.tbl, pk: r.pk });
    const state = new Map<string, VersionRef[]>();
    if (keys.size > 0) {
      const existing = await c.query<{ tbl: string; pk: unknown; metas: { vv: Change['vv']; hlc: string; origin: string; seq: number }[] }>(
        `SELECT s.tbl, s.pk,
                (SELECT jsonb_agg(jsonb_build_object('vv', e.v->'vv', 'hlc', e.v->'hlc', 'origin', e.v->'origin', 'seq', e.v->'seq') ORDER BY e.i)
                   FROM jsonb_array_elements(s.versions) WITH ORDINALITY AS e(v, i)) AS metas
           FROM ${s}.state s
           JOIN jsonb_to_recordset($1::jsonb) AS k(tbl text, pk jsonb) ON s.tbl = k.tbl AND s.pk = k.pk`,
        [JSON.stringify([...keys.values()])],
      );
      for (const r of existing.rows) {
        state.set(
          rowKey(r.tbl, r.pk),
          (r.metas ?? []).map((m, i) => ({ vv: m.vv, hlc: m.hlc, origin: m.origin, seq: Number(m.seq), ref: { i } })),
        );
      }
    }
    const touched = new Map<string, { tbl: string; pk: unknown; pos: number }>();
    for (const r of broadcast) {
      const key = rowKey(r.tbl, r.pk);
      const pos = Number(r.pos);
      state.set(key, foldRef(state.get(key) ?? [], { vv: r.vv, hlc: r.hlc, origin: r.origin, seq: Number(r.seq), ref: { p: pos } }));
      touched.set(key, { tbl: r.tbl, pk: r.pk, pos });
    }
    if (touched.size > 0) {
      const upserts = [...touched].map(([key, t]) => ({ tbl: t.tbl, pk: t.pk, refs: (state.get(key) ?? []).map((v) => v.ref), pos: t.pos }));
      // Each kept version's body: from the log (without its transaction marker) or from the
      // row's state before this statement.
      await c.query(
        `INSERT INTO ${s}.state (tbl, pk, versions, pos)
         SELECT x.tbl, x.pk,
                (SELECT jsonb_agg(CASE WHEN e.r ? 'p' THEN (SELECT l.change - 'tx_end' FROM ${s}.log l WHERE l.pos = (e.r->>'p')::bigint)
                                       ELSE o.versions -> ((e.r->>'i')::int) END ORDER BY e.n)
                   FROM jsonb_array_elements(x.refs) WITH ORDINALITY AS e(r, n)),
                x.pos
           FROM jsonb_to_recordset($1::jsonb) AS x(tbl text, pk jsonb, refs jsonb, pos bigint)
           LEFT JOIN ${s}.state o ON o.tbl = x.tbl AND o.pk = x.pk
         ON CONFLICT (tbl, pk) DO UPDATE SET versions = EXCLUDED.versions, pos = EXCLUDED.pos`,
        [JSON.stringify(upserts)],
      );
    }
    const upto = Number(log.rows[log.rows.length - 1]?.pos);
    await c.query(`UPDATE ${s}.meta SET compacted_upto = $1`, [upto]);
    await c.query('COMMIT');
    return { entries: log.rows.length, compactedUpto: upto };
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
