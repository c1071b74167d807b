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
}

function statement(text: string): Statement {
  return { name: `hs_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`, text };
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
