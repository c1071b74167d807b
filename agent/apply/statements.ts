/**
 * The SQL of an apply: the read before the transaction, and the transaction itself as one
 * message of several statements (docs/architecture.md "Apply"). PostgreSQL runs such a message
 * as one transaction, so it is open only while its statements execute: no round trip, no wait
 * on the agent's event loop. A message of several statements cannot carry parameters, so each
 * statement takes its rows as one jsonb literal; identifiers come from `hubsync.tables`, quoted.
 */
import type { Version } from '../../protocol/conflict.js';
import { hlcToBigInt, decodeHlc } from '../../protocol/hlc.js';
import { normalize } from '../../protocol/version-vector.js';
import type { TableInfo } from '../catalog.js';
import { versionRef } from '../reports.js';
import { quoteIdent, quoteLiteral, quoteTable } from '../sql/ident.js';
import { jsonbLiteral, jsonbOfColumns } from '../sql/jsonb.js';
import { applySession, PINNED_SESSION } from '../sql/session.js';
import type { Plan, RowPlan } from './plan.js';

/**
 * For each column of table `$1` (a quoted name), the type to cast its text to: the type without
 * modifier, domains replaced by their base type. A cast to `varchar(3)` or `bit(3)` truncates,
 * where assigning to such a column fails; casting to the bare type and letting the assignment
 * apply the modifier (and the domain's checks) fails alike.
 */
export const CAST_TYPES_SQL = `
  SELECT a.attname AS name, format('%I.%I', n.nspname, ty.typname) AS cast
  FROM pg_attribute a
  CROSS JOIN LATERAL (
    WITH RECURSIVE d(oid, depth) AS (
      SELECT a.atttypid, 0
      UNION ALL
      SELECT t.typbasetype, d.depth + 1 FROM d JOIN pg_type t ON t.oid = d.oid WHERE t.typtype = 'd'
    )
    SELECT oid FROM d ORDER BY depth DESC LIMIT 1
  ) b
  JOIN pg_type ty ON ty.oid = b.oid
  JOIN pg_namespace n ON n.oid = ty.typnamespace
  WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped`;

/** Statements of one table; `src` is a jsonb array expression with one element per row. */
export interface TableSql {
  /** Elements: key values. Returns per element (`ord` from 1) the canonical key, the row as text, its version. No locks. */
  read(src: string): string;
  /** Elements: key values. Locks the rows that exist, in key order. */
  lock(src: string): string;
  /**
   * Elements: key values, version key, present, stored HLC, stored vector. Locks the rows in key
   * order and fails with HS001 unless every row is as read.
   */
  check(src: string, n: number): string;
  /** Elements: values of `columns`. */
  insert(columns: readonly string[], src: string, n: number): string;
  /** Elements: key values, then values of `columns` (non-key). */
  update(columns: readonly string[], src: string, n: number): string;
  /** Elements: key values. */
  delete(src: string, n: number): string;
}

const expectRows = (dml: string, n: number, what: string): string =>
  `WITH w AS (${dml} RETURNING 1) SELECT hubsync.expect(count(*), ${n}, ${quoteLiteral(what)}) FROM w`;

export function tableSql(t: TableInfo, cast: ReadonlyMap<string, string>): TableSql {
  const table = quoteTable(t.name);
  const name = quoteLiteral(t.name);
  const types = new Map(t.columns.map((c) => [c.name, c.type]));
  const castOf = (c: string): string => cast.get(c) ?? 'text';
  const k = t.pk.length;
  // Keys are cast to the column's own type, so a value that is not in canonical form still finds its row.
  const typedKeys = (e: string): string => t.pk.map((c, i) => `(${e}->>${i})::${types.get(c) ?? 'text'} AS k${i + 1}`).join(', ');
  const keyNames = t.pk.map((_, i) => `k${i + 1}`).join(', ');
  const keyMatch = (alias: string): string => t.pk.map((c, i) => `b.${quoteIdent(c)} = ${alias}.k${i + 1}`).join(' AND ');
  const keyMatchElem = (e: string): string => t.pk.map((c, i) => `b.${quoteIdent(c)} = (${e}->>${i})::${types.get(c) ?? 'text'}`).join(' AND ');
  const canonicalKey = `jsonb_build_object(${t.pk.map((c, i) => `${quoteLiteral(c)}, k.k${i + 1}::text`).join(', ')})`;
  const conflictTarget = t.pk.map(quoteIdent).join(', ');
  // Every lookup is a LATERAL subquery that cannot be flattened into a join (LIMIT, FOR UPDATE):
  // one index probe per key whatever the table's statistics say (as a join, the planner read
  // small tables whole into a hash, and kept doing so as they grew).
  return {
    read: (src) =>
      `SELECT u.ord::int AS ord, p.pk, p.pk::text AS pk_text, x.r AS cur, rv.vv, rv.hlc::text AS hlc, rv.origin, rv.deleted, rv.cols
       FROM jsonb_array_elements(${src}) WITH ORDINALITY AS u(e, ord)
       CROSS JOIN LATERAL (SELECT ${typedKeys('u.e')}) k
       CROSS JOIN LATERAL (SELECT ${canonicalKey} AS pk) p
       LEFT JOIN LATERAL (
         SELECT ${jsonbOfColumns('b', t.columns.map((c) => c.name))} AS r FROM ${table} b WHERE ${keyMatch('k')} LIMIT 1
       ) x ON true
       LEFT JOIN LATERAL (
         SELECT v.vv, v.hlc, v.origin, v.deleted, v.cols FROM hubsync.row_version v WHERE v.key = ${name} || ' ' || p.pk::text LIMIT 1
       ) rv ON true`,
    // Rows are locked in key order (the outer rows are sorted before the LATERAL lock), so two
    // applies cannot deadlock, and the lock order is the one documented for local writers.
    lock: (src) =>
      `SELECT count(*) FROM (SELECT ${typedKeys('u.e')} FROM jsonb_array_elements(${src}) AS u(e) ORDER BY ${keyNames}) k
       CROSS JOIN LATERAL (SELECT 1 FROM ${table} b WHERE ${keyMatch('k')} FOR UPDATE OF b) x`,
    check: (src, n) =>
      `SELECT hubsync.expect(count(*) FILTER (WHERE s.ok), ${n}, ${quoteLiteral(`rows of ${t.name} as read`)}) FROM (
         SELECT (x.found IS NOT NULL) = (o.e->>${k + 1})::boolean
                AND rv.hlc IS NOT DISTINCT FROM (o.e->>${k + 2})::bigint
                AND rv.vv IS NOT DISTINCT FROM nullif(o.e->${k + 3}, 'null'::jsonb) AS ok
         FROM (SELECT u.e, ${typedKeys('u.e')} FROM jsonb_array_elements(${src}) AS u(e) ORDER BY ${keyNames}) o
         LEFT JOIN LATERAL (SELECT true AS found FROM ${table} b WHERE ${keyMatch('o')} FOR UPDATE OF b) x ON true
         LEFT JOIN LATERAL (SELECT v.vv, v.hlc FROM hubsync.row_version v WHERE v.key = o.e->>${k} LIMIT 1) rv ON true
       ) s`,
    insert: (columns, src, n) =>
      expectRows(
        `INSERT INTO ${table} (${columns.map(quoteIdent).join(', ')}) OVERRIDING SYSTEM VALUE
         SELECT ${columns.map((c, i) => `(u.e->>${i})::${castOf(c)}`).join(', ')}
         FROM jsonb_array_elements(${src}) WITH ORDINALITY AS u(e, ord) ORDER BY u.ord
         ON CONFLICT (${conflictTarget}) DO NOTHING`,
        n,
        `rows inserted into ${t.name}`,
      ),
    update: (columns, src, n) =>
      expectRows(
        `UPDATE ${table} AS b SET ${columns.map((c, i) => `${quoteIdent(c)} = (u.e->>${k + i})::${castOf(c)}`).join(', ')}
         FROM jsonb_array_elements(${src}) AS u(e) WHERE ${keyMatchElem('u.e')}`,
        n,
        `rows updated in ${t.name}`,
      ),
    delete: (src, n) => expectRows(`DELETE FROM ${table} AS b USING jsonb_array_elements(${src}) AS u(e) WHERE ${keyMatchElem('u.e')}`, n, `rows deleted from ${t.name}`),
  };
}

export interface ReadMessage {
  readonly text: string;
  /** Which statement result holds which table's rows (index into the results). */
  readonly tables: readonly { readonly table: TableInfo; readonly keys: readonly (readonly string[])[]; readonly result: number }[];
  /** Index of the cursor's result. */
  readonly cursorResult: number;
}

/**
 * The read before an apply: the cursor, then per table (in `order`) the rows. One message, no
 * locks. With `lockTimeoutMs` (rows a local writer keeps changing), it opens the apply
 * transaction instead and locks what it reads: the cursor's row, then the rows table by table in
 * `order`, each in key order; the apply message then ends with COMMIT.
 */
export function readMessage(
  byTable: ReadonlyMap<TableInfo, readonly (readonly string[])[]>,
  order: readonly TableInfo[],
  sqlOf: (t: TableInfo) => TableSql,
  lockTimeoutMs?: number,
): ReadMessage {
  const lock = lockTimeoutMs !== undefined;
  const parts = lock
    ? ['BEGIN', applySession(lockTimeoutMs), `SELECT "cursor"::text AS cursor FROM hubsync.apply_state FOR UPDATE`]
    : [PINNED_SESSION, `SELECT "cursor"::text AS cursor FROM hubsync.apply_state`];
  const cursorResult = parts.length - 1;
  const present = order.filter((t) => byTable.has(t));
  // Locks first, then the reads, each its own statement: a statement that waited for a row lock
  // sees the row's new version but other tables (row_version) as of its start.
  if (lock) for (const t of present) parts.push(sqlOf(t).lock(jsonbLiteral(byTable.get(t))));
  const tables = present.map((t) => {
    const keys = byTable.get(t) ?? [];
    parts.push(sqlOf(t).read(jsonbLiteral(keys)));
    return { table: t, keys, result: parts.length - 1 };
  });
  return { text: parts.join(';\n'), tables, cursorResult };
}

const hlcSql = (hex: string): string => hlcToBigInt(decodeHlc(hex)).toString();

export interface ApplyMessage {
  readonly text: string;
  /** Result index of the conflict insert (rows in plan order), if any. */
  readonly conflicts: number | null;
  /** Result index of the dead-letter insert (rows in plan order), if any. */
  readonly deadLetters: number | null;
}

/**
 * The apply transaction. In order: the cursor (compare-and-set against the one read), every
 * row locked and checked table by table in `tables` order, deletes (tables in reverse order:
 * children before parents), updates and inserts (parents before children), versions, conflict
 * records, dead letters. Any statement finding a row otherwise than planned fails the whole
 * message with HS001.
 */
export function applyMessage(input: {
  readonly plan: Plan;
  /** The cursor read; null for snapshot chunks. */
  readonly cursor: number | null;
  /** Synced tables in lock order. */
  readonly tables: readonly TableInfo[];
  readonly sqlOf: (t: TableInfo) => TableSql;
  readonly lockTimeoutMs: number;
}): ApplyMessage {
  const { plan, cursor, tables, sqlOf } = input;
  const parts = [applySession(input.lockTimeoutMs)];
  if (cursor !== null) {
    parts.push(
      `WITH w AS (UPDATE hubsync.apply_state SET "cursor" = ${Math.trunc(plan.top)}, clock_floor = greatest(clock_floor, ${plan.floor.toString()}::bigint), last_apply_at = now()
       WHERE "cursor" = ${Math.trunc(cursor)} RETURNING 1) SELECT hubsync.expect(count(*), 1, 'the cursor as read') FROM w`,
    );
  } else {
    parts.push(`UPDATE hubsync.apply_state SET clock_floor = greatest(clock_floor, ${plan.floor.toString()}::bigint), last_apply_at = now()`);
  }
  const byTable = new Map<string, RowPlan[]>();
  for (const r of plan.rows) {
    const list = byTable.get(r.table.name);
    if (list) list.push(r);
    else byTable.set(r.table.name, [r]);
  }
  const ordered = tables.filter((t) => byTable.has(t.name));
  const rowsOf = (t: TableInfo): RowPlan[] => byTable.get(t.name) ?? [];

  for (const t of ordered) {
    const rows = rowsOf(t);
    const src = rows.map((r) => [...r.key, `${t.name} ${r.read.pkText}`, r.read.cur !== null, r.read.stored?.hlc ?? null, r.read.stored?.vv ?? null]);
    parts.push(sqlOf(t).check(jsonbLiteral(src), rows.length));
  }
  for (const t of [...ordered].reverse()) {
    const rows = rowsOf(t).filter((r) => r.write === 'delete' || r.write === 'replace');
    if (rows.length > 0) parts.push(sqlOf(t).delete(jsonbLiteral(rows.map((r) => r.key)), rows.length));
  }
  for (const t of ordered) {
    const groups = new Map<string, RowPlan[]>();
    for (const r of rowsOf(t)) {
      if (r.write === 'none' || r.write === 'delete') continue;
      const id = `${r.write === 'update' ? 'u' : 'i'}\u0000${r.columns.join('\u0000')}`;
      const g = groups.get(id);
      if (g) g.push(r);
      else groups.set(id, [r]);
    }
    // Updates before inserts: an update can free a unique value an insert takes.
    const sorted = [...groups.entries()].sort(([a], [b]) => b.localeCompare(a));
    for (const [id, rows] of sorted) {
      const columns = (rows[0] as RowPlan).columns;
      if (id.startsWith('u')) parts.push(sqlOf(t).update(columns, jsonbLiteral(rows.map((r) => [...r.key, ...r.values])), rows.length));
      else parts.push(sqlOf(t).insert(columns, jsonbLiteral(rows.map((r) => r.values)), rows.length));
    }
  }
  const fresh = plan.rows.filter((r): r is RowPlan & { version: Version } => r.read.stored === null && r.version !== null);
  if (fresh.length > 0) {
    const src = fresh.map((r) => [`${r.table.name} ${r.read.pkText}`, r.table.name, r.read.pk, normalize(r.version.vv), hlcSql(r.version.hlc), r.version.origin, r.version.deleted, r.cols]);
    parts.push(
      `WITH w AS (INSERT INTO hubsync.row_version (key, tbl, pk, vv, hlc, origin, deleted, cols)
         SELECT u.e->>0, u.e->>1, u.e->2, u.e->3, (u.e->>4)::bigint, u.e->>5, (u.e->>6)::boolean, nullif(u.e->7, 'null'::jsonb) FROM jsonb_array_elements(${jsonbLiteral(src)}) AS u(e)
         ON CONFLICT (key) DO NOTHING RETURNING 1)
       SELECT hubsync.expect(count(*), ${fresh.length}, 'new row versions') FROM w`,
    );
  }
  // Evicted rows: their versions go too (the rows were locked and checked as read above).
  const forgotten = plan.rows.filter((r) => r.read.stored !== null && r.version === null);
  if (forgotten.length > 0) {
    const keys = forgotten.map((r) => `${r.table.name} ${r.read.pkText}`);
    parts.push(
      `WITH w AS (DELETE FROM hubsync.row_version WHERE key = ANY (SELECT jsonb_array_elements_text(${jsonbLiteral(keys)})) RETURNING 1)
       SELECT hubsync.expect(count(*), ${forgotten.length}, 'evicted row versions') FROM w`,
    );
  }
  const known = plan.rows.filter((r): r is RowPlan & { version: Version } => r.read.stored !== null && r.version !== null);
  if (known.length > 0) {
    const src = known.map((r) => [`${r.table.name} ${r.read.pkText}`, normalize(r.version.vv), hlcSql(r.version.hlc), r.version.origin, r.version.deleted, r.read.stored?.vv, r.read.stored?.hlc, r.cols]);
    parts.push(
      `WITH w AS (UPDATE hubsync.row_version AS rv SET vv = u.e->1, hlc = (u.e->>2)::bigint, origin = u.e->>3, deleted = (u.e->>4)::boolean, cols = nullif(u.e->7, 'null'::jsonb)
         FROM jsonb_array_elements(${jsonbLiteral(src)}) AS u(e)
         WHERE rv.key = u.e->>0 AND rv.vv = u.e->5 AND rv.hlc = (u.e->>6)::bigint RETURNING 1)
       SELECT hubsync.expect(count(*), ${known.length}, 'row versions as read') FROM w`,
    );
  }
  let conflicts: number | null = null;
  if (plan.conflicts.length > 0) {
    const src = plan.conflicts.map((c) => [
      c.table,
      c.pk,
      c.strategy,
      c.winner,
      versionRef(c.local),
      versionRef(c.incoming),
      c.localRow,
      c.incomingRow,
      c.offset,
      c.report,
      c.columns,
    ]);
    conflicts = parts.length;
    parts.push(
      `INSERT INTO hubsync.conflicts (tbl, pk, strategy, winner, local_version, incoming_version, local_row, incoming_row, log_offset, report, columns)
       SELECT u.e->>0, u.e->1, u.e->>2, u.e->>3, u.e->4, u.e->5, nullif(u.e->6, 'null'::jsonb), nullif(u.e->7, 'null'::jsonb), (u.e->>8)::bigint, (u.e->>9)::boolean, nullif(u.e->10, 'null'::jsonb)
       FROM jsonb_array_elements(${jsonbLiteral(src)}) WITH ORDINALITY AS u(e, ord) ORDER BY u.ord
       RETURNING id::text AS id, detected_at`,
    );
  }
  let deadLetters: number | null = null;
  if (plan.deadLetters.length > 0) {
    const src = plan.deadLetters.map((d) => [
      d.item.offset,
      d.item.change.origin,
      d.item.change.seq,
      d.item.change.table,
      d.item.change,
      d.reason,
      d.sqlstate,
      d.strategy,
      d.local === null ? null : versionRef(d.local),
    ]);
    deadLetters = parts.length;
    parts.push(
      `INSERT INTO hubsync.dead_letter (log_offset, origin, seq, tbl, change, reason, sqlstate, strategy, local_version)
       SELECT (u.e->>0)::bigint, u.e->>1, (u.e->>2)::bigint, u.e->>3, u.e->4, u.e->>5, u.e->>6, u.e->>7, nullif(u.e->8, 'null'::jsonb)
       FROM jsonb_array_elements(${jsonbLiteral(src)}) WITH ORDINALITY AS u(e, ord) ORDER BY u.ord
       RETURNING id::text AS id, failed_at`,
    );
  }
  return { text: parts.join(';\n'), conflicts, deadLetters };
}
