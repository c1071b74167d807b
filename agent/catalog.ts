/**
 * What the agent knows about a synced table: its carried columns with their types, its primary
 * key, and the settings its values' text form depends on. Read from the PostgreSQL catalog at
 * install, stored in `hubsync.tables`, and read back from there by the running agent, so the
 * apply engine writes exactly the tables and columns that were installed.
 */
import type { StrategyName } from '../protocol/messages.js';
import type { TableConfig } from './config.js';
import type { Queryable } from './db.js';
import { AgentError } from './errors.js';
import { splitTable } from './sql/ident.js';
import { ALL_PINS, classifyType, type Pin, type TypeComponent } from './sql/types.js';

export interface ColumnInfo {
  readonly name: string;
  /** `format_type()` of the column: a type expression valid in a cast. */
  readonly type: string;
}

export interface TableInfo {
  /** `schema.table` as configured and as on the wire. */
  readonly name: string;
  /** Carried columns in table order (generated columns are computed locally and not carried). */
  readonly columns: readonly ColumnInfo[];
  /** Primary-key column names in key order. */
  readonly pk: readonly string[];
  /** Settings pinned while the capture function turns this table's values into text. */
  readonly pins: readonly Pin[];
  readonly strategy: StrategyName | undefined;
  /** `r` plain table, `p` partitioned table. */
  readonly relkind: 'r' | 'p';
  /** How concurrent updates merge: whole rows, or column by column (protocol/merge.ts). */
  readonly merge: 'row' | 'column';
  /** Counter columns (column-level tables only). */
  readonly additive: readonly string[];
  /** Column names retired by schema changes → their name now, or null once dropped (agent/schema/plan.ts). */
  readonly retired?: Readonly<Record<string, string | null>>;
  /** The schema version that added the table to the synced set, when a schema change did. */
  readonly addedBy?: number;
}

/** Counter columns must hold exact numbers. */
const ADDITIVE_TYPES = /^(smallint|integer|bigint|numeric(\(\d+(,\d+)?\))?)$/;

/** The merge mode and counter columns of `config`, checked against the table's columns. */
function mergeOf(config: TableConfig, columns: readonly ColumnInfo[], pk: readonly string[]): { merge: 'row' | 'column'; additive: string[] } {
  const additive = [...new Set(config.additive ?? [])];
  for (const a of additive) {
    const c = columns.find((x) => x.name === a);
    if (!c) throw new AgentError('bad_additive', `table ${config.name}: additive column ${a} does not exist (or is generated)`);
    if (pk.includes(a)) throw new AgentError('bad_additive', `table ${config.name}: additive column ${a} is part of the primary key`);
    if (!ADDITIVE_TYPES.test(c.type)) {
      throw new AgentError('bad_additive', `table ${config.name}: additive column ${a} has type ${c.type}; counters must be smallint, integer, bigint or numeric`);
    }
  }
  if (config.merge === 'row' && additive.length > 0) {
    throw new AgentError('bad_additive', `table ${config.name}: additive columns need merge: column (counters merge column by column)`);
  }
  return { merge: additive.length > 0 ? 'column' : (config.merge ?? 'row'), additive };
}

const TYPE_COMPONENTS_SQL = `
WITH RECURSIVE t(oid) AS (
  SELECT $1::oid
  UNION
  SELECT x.oid
  FROM t
  JOIN pg_type ty ON ty.oid = t.oid
  CROSS JOIN LATERAL (
    SELECT ty.typelem WHERE ty.typelem <> 0 AND ty.typlen = -1
    UNION ALL SELECT ty.typbasetype WHERE ty.typtype = 'd'
    UNION ALL SELECT r.rngsubtype FROM pg_range r WHERE r.rngtypid = ty.oid
    UNION ALL SELECT r.rngtypid FROM pg_range r WHERE r.rngmultitypid = ty.oid
    UNION ALL SELECT a.atttypid FROM pg_attribute a
      WHERE ty.typtype = 'c' AND a.attrelid = ty.typrelid AND a.attnum > 0 AND NOT a.attisdropped
  ) x(oid)
)
SELECT n.nspname AS schema, ty.typname AS name, ty.typtype::text AS typtype
FROM t JOIN pg_type ty ON ty.oid = t.oid JOIN pg_namespace n ON n.oid = ty.typnamespace`;

/**
 * Reads a configured table from the catalog. Throws `AgentError` naming the table (and column)
 * when it is missing, not a table, has no primary key, or holds a type the agent cannot carry.
 */
export async function introspectTable(q: Queryable, config: TableConfig): Promise<TableInfo> {
  const { schema, table } = splitTable(config.name);
  const rel = await q.query<{ oid: number; relkind: string }>(
    `SELECT c.oid, c.relkind::text AS relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND c.relname = $2`,
    [schema, table],
  );
  const r = rel.rows[0];
  if (!r) throw new AgentError('missing_table', `table ${config.name} does not exist`);
  if (r.relkind !== 'r' && r.relkind !== 'p') {
    throw new AgentError('not_a_table', `${config.name} is not a table (relkind ${r.relkind}); only tables can be synced`);
  }
  const pkq = await q.query<{ name: string }>(
    `SELECT a.attname AS name
     FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
     WHERE i.indrelid = $1 AND i.indisprimary ORDER BY k.ord`,
    [r.oid],
  );
  if (pkq.rows.length === 0) {
    throw new AgentError('no_primary_key', `table ${config.name} has no primary key; synced tables need one`);
  }
  const pk = pkq.rows.map((x) => x.name);
  const cols = await q.query<{ name: string; typid: number; type: string; generated: string; identity: string }>(
    `SELECT a.attname AS name, a.atttypid AS typid, format_type(a.atttypid, a.atttypmod) AS type,
            a.attgenerated::text AS generated, a.attidentity::text AS identity
     FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    [r.oid],
  );
  const columns: ColumnInfo[] = [];
  const pins = new Set<Pin>();
  for (const c of cols.rows) {
    if (c.generated !== '') continue;
    if (c.identity === 'a' && !pk.includes(c.name)) {
      throw new AgentError(
        'identity_always',
        `table ${config.name} column ${c.name} is GENERATED ALWAYS AS IDENTITY outside the primary key, so replicated values cannot be written; use GENERATED BY DEFAULT`,
      );
    }
    const comps = await q.query<TypeComponent>(TYPE_COMPONENTS_SQL, [c.typid]);
    const verdict = classifyType(comps.rows);
    if (!verdict.ok) {
      throw new AgentError(
        'unsupported_type',
        `table ${config.name} column ${c.name} has type ${c.type}, which the agent cannot carry: ${verdict.reason}`,
      );
    }
    for (const p of verdict.pins) pins.add(p);
    columns.push({ name: c.name, type: c.type });
  }
  return {
    name: config.name,
    columns,
    pk,
    pins: ALL_PINS.filter((p) => pins.has(p)),
    strategy: config.conflictStrategy,
    relkind: r.relkind,
    ...mergeOf(config, columns, pk),
  };
}

interface TablesRow {
  tbl: string;
  columns: ColumnInfo[];
  pk_columns: string[];
  pins: Pin[];
  strategy: StrategyName | null;
  relkind: 'r' | 'p';
  merge: 'row' | 'column';
  additive: string[];
  retired: Record<string, string | null>;
  added_by_schema: number | null;
}

/** The installed tables, as recorded in `hubsync.tables` at install. */
export async function loadInstalledTables(q: Queryable): Promise<Map<string, TableInfo>> {
  const { rows } = await q.query<TablesRow>(
    `SELECT tbl, columns, pk_columns, pins, strategy, relkind, merge, additive, retired, added_by_schema FROM hubsync.tables ORDER BY position, tbl`,
  );
  return new Map(
    rows.map((x) => [
      x.tbl,
      { name: x.tbl, columns: x.columns, pk: x.pk_columns, pins: x.pins, strategy: x.strategy ?? undefined, relkind: x.relkind, merge: x.merge, additive: x.additive, retired: x.retired, ...(x.added_by_schema === null ? {} : { addedBy: x.added_by_schema }) },
    ]),
  );
}
