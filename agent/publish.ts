/**
 * `hub-broker agent publish-existing`: the rows already in the synced tables become captured
 * inserts with a fresh version, so the first branch of a tenant can publish its initial state.
 * Only rows without a version (never captured nor applied here) are published, so running it
 * twice publishes nothing new. Rows go out in transactions of `chunkRows`, in primary-key order.
 */
import type pg from 'pg';
import { jsonbOfColumns } from './sql/jsonb.js';
import { PINNED_SESSION } from './sql/session.js';
import type { TableInfo } from './catalog.js';
import { AgentError } from './errors.js';
import { quoteIdent, quoteTable } from './sql/ident.js';
import { additiveArraySql } from './sql/capture.js';

export interface PublishProgress {
  readonly table: string;
  /** Rows turned into changes so far in this table. */
  readonly published: number;
  /** Rows looked at so far in this table. */
  readonly scanned: number;
  /** Rows in the table when it started, estimated (rows may also come and go meanwhile). */
  readonly total: number;
}


interface TableSql {
  /** $1 limit, then the last key (text, one parameter per key column) when `after`. */
  keys(after: boolean): string;
  /** $1 table name, $2.. the upper key, then the lower key when `after`. */
  publish(after: boolean): string;
}

function tableSql(t: TableInfo): TableSql {
  // Column-level tables: the published row's column state, stamped as a captured insert would be.
  const cols =
    t.merge === 'column'
      ? `hubsync.stamp_columns(NULL, NULL, d.r, ${additiveArraySql(t)}, d.h, m.branch_id, 1)`
      : 'NULL::jsonb';
  const types = new Map(t.columns.map((c) => [c.name, c.type]));
  const keyCols = t.pk.map((c) => `t.${quoteIdent(c)}`);
  const typed = (first: number) => `(${t.pk.map((c, i) => `$${first + i}::${types.get(c) ?? 'text'}`).join(', ')})`;
  const key = `(${keyCols.join(', ')})`;
  const n = t.pk.length;
  return {
    keys: (after) =>
      `SELECT ARRAY[${keyCols.map((c) => `${c}::text`).join(', ')}] AS k FROM ${quoteTable(t.name)} t
       ${after ? `WHERE ${key} > ${typed(2)}` : ''} ORDER BY ${keyCols.join(', ')} LIMIT $1`,
    publish: (after) =>
      `WITH fresh AS (
         SELECT ${jsonbOfColumns('t', t.pk)} AS pk, ${jsonbOfColumns('t', t.columns.map((c) => c.name))} AS r,
                ${keyCols.map((c, i) => `${c} AS k${i}`).join(', ')}
         FROM ${quoteTable(t.name)} t
         WHERE ${key} <= ${typed(2)} ${after ? `AND ${key} > ${typed(2 + n)}` : ''}
       ),
       todo AS (
         SELECT f.*, greatest(floor(date_part('epoch', clock_timestamp()) * 1000)::bigint << 16, a.clock_floor) AS h
         FROM fresh f CROSS JOIN hubsync.apply_state a
         WHERE NOT EXISTS (SELECT 1 FROM hubsync.row_version rv WHERE rv.key = $1::text || ' ' || f.pk::text)
       ),
       v AS (
         INSERT INTO hubsync.row_version (key, tbl, pk, vv, hlc, origin, deleted, cols)
         SELECT $1::text || ' ' || d.pk::text, $1, d.pk, jsonb_build_object(m.branch_id, 1), d.h, m.branch_id, false, ${cols}
         FROM todo d CROSS JOIN hubsync.meta m
         ON CONFLICT (key) DO NOTHING
         RETURNING pk, vv, hlc, cols
       )
       INSERT INTO hubsync.change_log (tx, tbl, op, pk, "row", hlc, vv, cols)
       SELECT pg_current_xact_id(), $1, 'insert', v.pk, d.r, v.hlc, v.vv, v.cols
       FROM v JOIN todo d ON d.pk = v.pk
       ORDER BY ${t.pk.map((_, i) => `d.k${i}`).join(', ')}`,
  };
}

/** Rows in `table` for progress: the planner's estimate, or a count when it has none (never analyzed). */
async function rowEstimate(pool: pg.Pool, table: string): Promise<number> {
  const { rows } = await pool.query<{ n: string }>(`SELECT reltuples::bigint::text AS n FROM pg_class WHERE oid = $1::regclass`, [quoteTable(table)]);
  const estimate = Number(rows[0]?.n ?? -1);
  if (estimate >= 0) return estimate;
  const counted = await pool.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${quoteTable(table)}`);
  return Number(counted.rows[0]?.n ?? 0);
}

export async function publishExisting(
  pool: pg.Pool,
  tables: ReadonlyMap<string, TableInfo>,
  onProgress: (p: PublishProgress) => void = () => undefined,
  chunkRows = 1000,
): Promise<Map<string, number>> {
  const meta = await pool.query(`SELECT 1 FROM hubsync.meta`).catch(() => null);
  if (meta === null || meta.rowCount === 0) {
    throw new AgentError('not_installed', 'hubsync is not installed in this database; run hub-broker agent install');
  }
  const out = new Map<string, number>();
  for (const t of tables.values()) {
    const sql = tableSql(t);
    let last: string[] | null = null;
    let published = 0;
    let scanned = 0;
    const total = await rowEstimate(pool, t.name);
    for (;;) {
      const c = await pool.connect();
      let page: string[][] = [];
      try {
        await c.query('BEGIN');
        // The same settings as capture, so the published text is what a trigger would have written.
        await c.query(PINNED_SESSION);
        const keys = await c.query<{ k: string[] }>(sql.keys(last !== null), [chunkRows, ...(last ?? [])]);
        page = keys.rows.map((r) => r.k);
        const hi = page[page.length - 1];
        if (hi !== undefined) {
          const res = await c.query(sql.publish(last !== null), [t.name, ...hi, ...(last ?? [])]);
          published += res.rowCount ?? 0;
          scanned += page.length;
          last = hi;
        }
        await c.query('COMMIT');
      } catch (err) {
        await c.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        c.release();
      }
      if (page.length === 0) break;
      onProgress({ table: t.name, published, scanned, total });
      if (page.length < chunkRows) break;
    }
    out.set(t.name, published);
  }
  return out;
}
