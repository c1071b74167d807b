/**
 * Folds the tenant log into the compacted state that snapshots are served from. Per row the
 * state keeps the maximal versions (an antichain under the version-vector order): that is
 * independent of the order entries are folded in and of any conflict strategy, so the hub
 * never resolves conflicts itself; a bootstrapping agent resolves them with its own engine.
 */
import type pg from 'pg';
import { vv, type Change } from '../protocol/index.js';
import { quoteIdent } from './store/index.js';

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
 * otherwise added, removing the kept versions it dominates. Pure; `kept` must be an antichain.
 */
export function foldVersion(kept: readonly Change[], incoming: Change): Change[] {
  const out: Change[] = [];
  const v = asVersion(incoming);
  for (const k of kept) {
    const ord = vv.compare(v.vv, k.vv);
    if (ord === 'before') return [...kept];
    if (ord === 'equal') {
      // The same version twice (a resend under a new seq): keep one, the same one everywhere.
      if (!later(v, k)) return [...kept];
      continue;
    }
    if (ord === 'concurrent') out.push(k);
  }
  out.push(v);
  return out.sort((a, b) => (later(a, b) ? 1 : -1));
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
    const log = await c.query<{ pos: string; change: Change; target: string | null }>(
      `SELECT pos, change, target FROM ${s}.log WHERE pos > $1 ORDER BY pos LIMIT $2`,
      [from, pageSize],
    );
    if (log.rows.length === 0) {
      await c.query('COMMIT');
      return { entries: 0, compactedUpto: from };
    }
    const broadcast = log.rows.filter((r) => r.target === null);
    const keys = new Map<string, { tbl: string; pk: unknown }>();
    for (const r of broadcast) keys.set(rowKey(r.change.table, r.change.pk), { tbl: r.change.table, pk: r.change.pk });
    const state = new Map<string, Change[]>();
    if (keys.size > 0) {
      const existing = await c.query<{ tbl: string; pk: unknown; versions: Change[] }>(
        `SELECT s.tbl, s.pk, s.versions FROM ${s}.state s
           JOIN jsonb_to_recordset($1::jsonb) AS k(tbl text, pk jsonb) ON s.tbl = k.tbl AND s.pk = k.pk`,
        [JSON.stringify([...keys.values()])],
      );
      for (const r of existing.rows) state.set(rowKey(r.tbl, r.pk), r.versions);
    }
    const touched = new Map<string, { tbl: string; pk: unknown; pos: number }>();
    for (const r of broadcast) {
      const key = rowKey(r.change.table, r.change.pk);
      state.set(key, foldVersion(state.get(key) ?? [], r.change));
      touched.set(key, { tbl: r.change.table, pk: r.change.pk, pos: Number(r.pos) });
    }
    if (touched.size > 0) {
      const upserts = [...touched].map(([key, t]) => ({ tbl: t.tbl, pk: t.pk, versions: state.get(key), pos: t.pos }));
      await c.query(
        `INSERT INTO ${s}.state (tbl, pk, versions, pos)
         SELECT x.tbl, x.pk, x.versions, x.pos FROM jsonb_to_recordset($1::jsonb) AS x(tbl text, pk jsonb, versions jsonb, pos bigint)
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
