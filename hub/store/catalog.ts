/**
 * The tables branches report (`catalog.report`, tenant table `catalog`): what the hub knows of
 * the branches' columns, so that a route filter naming a column no branch has, or comparing it
 * with a value of another type, is refused when saved (hub/routes/catalog.ts decides).
 */
import type { CatalogReport, StrategyName } from '../../protocol/index.js';
import { quoteIdent, type Queryable } from './db.js';

export type ReportedTable = CatalogReport['tables'][number];

export interface CatalogTable extends ReportedTable {
  readonly reportedBy: string;
  readonly reportedAt: Date;
}

/**
 * Records what `branch` reports; a table is written only when its columns or key differ from
 * what is held, so reconnecting branches cost one read. Returns the number of tables written.
 */
export async function saveCatalog(q: Queryable, schema: string, branch: string, tables: readonly ReportedTable[]): Promise<number> {
  // One row per table: a report naming a table twice keeps its last entry.
  const byName = new Map(tables.map((t) => [t.name, t]));
  if (byName.size === 0) return 0;
  const { rowCount } = await q.query(
    `INSERT INTO ${quoteIdent(schema)}.catalog AS c (tbl, columns, pk, strategy, reported_by)
     SELECT t->>'name', t->'columns', t->'pk', t->>'strategy', $2 FROM jsonb_array_elements($1::jsonb) t
     ON CONFLICT (tbl) DO UPDATE SET columns = excluded.columns, pk = excluded.pk, strategy = excluded.strategy, reported_by = excluded.reported_by, reported_at = now()
       WHERE (c.columns, c.pk, c.strategy) IS DISTINCT FROM (excluded.columns, excluded.pk, excluded.strategy)`,
    [JSON.stringify([...byName.values()].map((t) => ({ name: t.name, columns: t.columns, pk: t.pk, strategy: t.strategy ?? null }))), branch],
  );
  return rowCount ?? 0;
}

/** Every reported table, by name; none while the tenant's schema is not there (being created) or older. */
export async function readCatalog(q: Queryable, schema: string): Promise<CatalogTable[]> {
  const there = await q.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [`${quoteIdent(schema)}.catalog`]);
  if (!there.rows[0]?.t) return [];
  const { rows } = await q.query<{ tbl: string; columns: ReportedTable['columns']; pk: string[]; strategy: StrategyName | null; reported_by: string; reported_at: Date }>(
    `SELECT tbl, columns, pk, strategy, reported_by, reported_at FROM ${quoteIdent(schema)}.catalog ORDER BY tbl`,
  );
  return rows.map((r) => ({ name: r.tbl, columns: r.columns, pk: r.pk, ...(r.strategy === null ? {} : { strategy: r.strategy }), reportedBy: r.reported_by, reportedAt: r.reported_at }));
}
