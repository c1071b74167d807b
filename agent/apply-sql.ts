/**
 * Parameterised statements the apply engine runs against one synced table, built once per
 * table and column set. Identifiers come from `hubsync.tables` (quoted); values are always
 * parameters, sent untyped so PostgreSQL reads their text form with the column's input function.
 */
import { createHash } from 'node:crypto';
import type { TableInfo } from './catalog.js';
import { quoteIdent, quoteLiteral, quoteTable } from './sql/ident.js';
import { ALL_PINS, PINNED } from './sql/types.js';

export interface Statement {
  /** Prepared-statement name, derived from the text so one name never means two statements. */
  readonly name: string;
  readonly text: string;
  /**
   * Planned again at every execution (sent unnamed) instead of prepared once: a prepared
   * statement keeps the generic plan made when it was first run, and one made while the table
   * was new and small keeps scanning it as it grows, until the next ANALYZE (measured: 5.8 ms
   * per read of 20 keys within the first minute of a sync). A fresh plan sees the table's size.
   * Only the batch read uses it: for the multi-row UPDATE and DELETE and the version
   * compare-and-set, fresh plans often chose a hash join over a scan of a table of 20,000 rows
   * for 100 keys, and the update path applied 8–12 % fewer rows per second (bench/sync-apply.ts).
   */
  readonly replan?: true;
}

function statement(text: string, replan = false): Statement {
  const s = { name: `hs_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`, text };
  return replan ? { ...s, replan: true } : s;
}

function jsonbOf(alias: string, names: readonly string[]): string {
  const pieces: string[] = [];
  for (let i = 0; i < names.length; i += 50) {
    const pairs = names.slice(i, i + 50).map((c) => `${quoteLiteral(c)}, ${alias}.${quoteIdent(c)}::text`);
    pieces.push(`jsonb_build_object(${pairs.join(', ')})`);
  }
  return pieces.join(' || ');
}

/**
 * Starts an apply transaction: capture off (no echo) and the same text-form settings as the
 * capture functions, so values read back for conflict records match what a capture would send.
 */
export const APPLY_SESSION = `SELECT ${[
  `set_config('hubsync.applying', 'on', true)`,
  ...ALL_PINS.map((p) => `set_config('${p}', '${PINNED[p]}', true)`),
].join(', ')}`;

/** The text-form settings alone, for the rest of the transaction (capture stays on). */
export const PINNED_SESSION = `SELECT ${ALL_PINS.map((p) => `set_config('${p}', '${PINNED[p]}', true)`).join(', ')}`;

export interface TableStatements {
  /**
   * $1..$k key values, $k+1 table name. Locks the business row, and returns the key in its
   * canonical text form, the current row as text (null when absent), and the row's version.
   */
  readonly lock: Statement;
  readonly delete: Statement;
  insert(columns: readonly string[]): Statement;
  /** Null when there is nothing but the key to write. */
  update(columns: readonly string[]): Statement | null;
}

export function tableStatements(t: TableInfo): TableStatements {
  const table = quoteTable(t.name);
  const types = new Map(t.columns.map((c) => [c.name, c.type]));
  const where = t.pk.map((c, i) => `b.${quoteIdent(c)} = $${i + 1}`).join(' AND ');
  const whereBare = t.pk.map((c, i) => `${quoteIdent(c)} = $${i + 1}`).join(' AND ');
  const canonicalKey = `jsonb_build_object(${t.pk
    .map((c, i) => `${quoteLiteral(c)}, ($${i + 1}::${types.get(c) ?? 'text'})::text`)
    .join(', ')})`;
  const lock = statement(
    `WITH cur AS (SELECT ${jsonbOf('b', t.columns.map((c) => c.name))} AS r FROM ${table} b WHERE ${where} FOR UPDATE OF b)
     SELECT k.pk, (SELECT r FROM cur) AS cur, rv.vv, rv.hlc::text AS hlc, rv.origin, rv.deleted
     FROM (SELECT ${canonicalKey} AS pk) k
     LEFT JOIN hubsync.row_version rv ON rv.key = $${t.pk.length + 1}::text || ' ' || k.pk::text`,
  );
  const del = statement(`DELETE FROM ${table} WHERE ${whereBare}`);
  const inserts = new Map<string, Statement>();
  const updates = new Map<string, Statement | null>();
  const conflictTarget = t.pk.map(quoteIdent).join(', ');
  return {
    lock,
    delete: del,
    insert(columns) {
      const id = columns.join('\u0000');
      let s = inserts.get(id);
      if (!s) {
        s = statement(
          `INSERT INTO ${table} (${columns.map(quoteIdent).join(', ')}) OVERRIDING SYSTEM VALUE
           VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')}) ON CONFLICT (${conflictTarget}) DO NOTHING`,
        );
        inserts.set(id, s);
      }
      return s;
    },
    update(columns) {
      const id = columns.join('\u0000');
      let s = updates.get(id);
      if (s === undefined) {
        const set = columns.filter((c) => !t.pk.includes(c));
        s =
          set.length === 0
            ? null
            : statement(
                `UPDATE ${table} SET ${set.map((c, i) => `${quoteIdent(c)} = $${t.pk.length + i + 1}`).join(', ')} WHERE ${whereBare}`,
              );
        updates.set(id, s);
      }
      return s;
    },
  };
}

export const RV_INSERT = statement(
  `INSERT INTO hubsync.row_version (key, tbl, pk, vv, hlc, origin, deleted)
   VALUES ($1::text || ' ' || $2::jsonb::text, $1, $2, $3, $4, $5, $6)
   ON CONFLICT (key) DO NOTHING`,
);

/** Compare-and-set on the vector read by `lock`: a local writer in between makes it miss. */
export const RV_UPDATE = statement(
  `UPDATE hubsync.row_version SET vv = $3, hlc = $4, origin = $5, deleted = $6
   WHERE key = $1::text || ' ' || $2::jsonb::text AND vv = $7 AND hlc = $8`,
);

export const CONFLICT_INSERT = statement(
  `INSERT INTO hubsync.conflicts (tbl, pk, strategy, winner, local_version, incoming_version, local_row, incoming_row, log_offset, report)
   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id::text AS id, detected_at`,
);

export const DEAD_LETTER_INSERT = statement(
  `INSERT INTO hubsync.dead_letter (log_offset, origin, seq, tbl, change, reason, sqlstate, strategy, local_version)
   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id::text AS id, failed_at`,
);

/**
 * For each column of table `$1` (a quoted name), the type to cast its text to in multi-row
 * statements: the type without modifier, domains replaced by their base type. A cast to
 * `varchar(3)` or `bit(3)` truncates, where assigning to such a column fails; casting to the bare
 * type and letting the assignment apply the modifier (and the domain's checks) fails alike.
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

/** Multi-row statements of one table; every parameter is a `text[]` with one element per row. */
export interface BatchStatements {
  /**
   * $1..$k key values, $k+1 table name. Locks the rows that exist and returns, per key (`ord`
   * from 1, in parameter order), the key in canonical text form, the current row as text (null
   * when absent) and the row's version.
   */
  readonly read: Statement;
  /** One parameter per column, in `columns` order. */
  insert(columns: readonly string[]): Statement;
  /** Key columns, then the non-key `columns`; null when there is nothing but the key to write. */
  update(columns: readonly string[]): Statement | null;
  /** Key columns. */
  readonly delete: Statement;
}

export function batchStatements(t: TableInfo, cast: ReadonlyMap<string, string>): BatchStatements {
  const table = quoteTable(t.name);
  const types = new Map(t.columns.map((c) => [c.name, c.type]));
  const castOf = (c: string): string => cast.get(c) ?? 'text';
  const k = t.pk.length;
  const arrays = (n: number, from = 1): string => Array.from({ length: n }, (_, i) => `$${from + i}::text[]`).join(', ');
  const keyNames = t.pk.map((_, i) => `k${i + 1}`);
  // Keys are cast as the per-change lock statement casts them, so both find the same rows.
  const keyMatch = (alias: string): string => t.pk.map((c, i) => `b.${quoteIdent(c)} = ${alias}.k${i + 1}::${types.get(c) ?? 'text'}`).join(' AND ');
  const canonicalKey = `jsonb_build_object(${t.pk.map((c, i) => `${quoteLiteral(c)}, k.k${i + 1}::text`).join(', ')})`;
  // Every lookup is a LATERAL subquery that cannot be flattened into a join (FOR UPDATE, LIMIT),
  // so one index probe per key whatever the table's statistics say: as a join, the planner read
  // the whole table into a hash instead for tables of up to some thousand rows, and a prepared
  // plan made while the table was new kept doing so as it grew (measured: 5.8 ms per read of 20
  // keys). Planned at every run (see Statement.replan): a plan made for a table of one page
  // scans it at every probe. Rows are locked in key order, so concurrent applies do not deadlock.
  const read = statement(
    `WITH k AS (
       SELECT u.ord, ${t.pk.map((c, i) => `u.k${i + 1}::${types.get(c) ?? 'text'} AS k${i + 1}`).join(', ')}
       FROM unnest(${arrays(k)}) WITH ORDINALITY AS u(${keyNames.join(', ')}, ord)
     ),
     cur AS (
       SELECT o.ord, x.r
       FROM (SELECT * FROM k ORDER BY ${keyNames.join(', ')}) o
       CROSS JOIN LATERAL (
         SELECT ${jsonbOf('b', t.columns.map((c) => c.name))} AS r
         FROM ${table} b WHERE ${t.pk.map((c, i) => `b.${quoteIdent(c)} = o.k${i + 1}`).join(' AND ')}
         FOR UPDATE OF b
       ) x
     )
     SELECT k.ord::int AS ord, p.pk, cur.r AS cur, rv.vv, rv.hlc::text AS hlc, rv.origin, rv.deleted
     FROM k CROSS JOIN LATERAL (SELECT ${canonicalKey} AS pk) p
     LEFT JOIN cur ON cur.ord = k.ord
     LEFT JOIN LATERAL (
       SELECT v.vv, v.hlc, v.origin, v.deleted FROM hubsync.row_version v WHERE v.key = $${k + 1}::text || ' ' || p.pk::text LIMIT 1
     ) rv ON true`,
    true,
  );
  const del = statement(`DELETE FROM ${table} AS b USING unnest(${arrays(k)}) AS u(${keyNames.join(', ')}) WHERE ${keyMatch('u')}`);
  const inserts = new Map<string, Statement>();
  const updates = new Map<string, Statement | null>();
  const conflictTarget = t.pk.map(quoteIdent).join(', ');
  return {
    read,
    delete: del,
    insert(columns) {
      const id = columns.join('\u0000');
      let s = inserts.get(id);
      if (!s) {
        const names = columns.map((_, i) => `v${i + 1}`);
        s = statement(
          `INSERT INTO ${table} (${columns.map(quoteIdent).join(', ')}) OVERRIDING SYSTEM VALUE
           SELECT ${columns.map((c, i) => `u.v${i + 1}::${castOf(c)}`).join(', ')}
           FROM unnest(${arrays(columns.length)}) WITH ORDINALITY AS u(${names.join(', ')}, ord) ORDER BY u.ord
           ON CONFLICT (${conflictTarget}) DO NOTHING`,
        );
        inserts.set(id, s);
      }
      return s;
    },
    update(columns) {
      const id = columns.join('\u0000');
      let s = updates.get(id);
      if (s === undefined) {
        const set = columns.filter((c) => !t.pk.includes(c));
        s =
          set.length === 0
            ? null
            : statement(
                `UPDATE ${table} AS b SET ${set.map((c, i) => `${quoteIdent(c)} = u.v${i + 1}::${castOf(c)}`).join(', ')}
                 FROM unnest(${arrays(k + set.length)}) AS u(${[...keyNames, ...set.map((_, i) => `v${i + 1}`)].join(', ')})
                 WHERE ${keyMatch('u')}`,
              );
        updates.set(id, s);
      }
      return s;
    },
  };
}

/** New versions of rows that had none: $1 tables, $2 keys (jsonb text), $3 vectors, $4 HLCs, $5 origins, $6 tombstone flags. */
export const RV_INSERT_MANY = statement(
  `INSERT INTO hubsync.row_version (key, tbl, pk, vv, hlc, origin, deleted)
   SELECT u.tbl || ' ' || u.pk::jsonb::text, u.tbl, u.pk::jsonb, u.vv::jsonb, u.hlc::bigint, u.origin, u.deleted
   FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::boolean[]) AS u(tbl, pk, vv, hlc, origin, deleted)
   ON CONFLICT (key) DO NOTHING`,
);

/** Compare-and-set of many versions at once: as `RV_UPDATE`, with $7 the vectors and $8 the HLCs read. */
export const RV_UPDATE_MANY = statement(
  `UPDATE hubsync.row_version AS rv SET vv = u.vv::jsonb, hlc = u.hlc::bigint, origin = u.origin, deleted = u.deleted
   FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::boolean[], $7::text[], $8::text[])
     AS u(tbl, pk, vv, hlc, origin, deleted, old_vv, old_hlc)
   WHERE rv.key = u.tbl || ' ' || u.pk::jsonb::text AND rv.vv = u.old_vv::jsonb AND rv.hlc = u.old_hlc::bigint`,
);
