/**
 * Generates the capture function and triggers of one synced table. The function is written for
 * its table (columns, key and branch id are literals), so a captured row costs no catalog
 * lookups: one jsonb build for the key, one for the row, and one SQL statement that bumps the
 * row's version and appends to the outbox.
 *
 * Cost matters here (every write of the application pays it), which explains three choices:
 * - `SECURITY DEFINER` (writers need no privileges on hubsync) without `SET search_path`: every
 *   function, operator and type is schema-qualified instead, because assigning search_path on
 *   each call costs more than the rest of the function's setup;
 * - the text-form settings the table's types need (see types.ts) are pinned only when the
 *   writer's session differs from them, by a helper with a SET clause: a SET clause on the
 *   trigger function itself costs every write several microseconds;
 * - `row_version` is keyed by one `text COLLATE "C"` column (table and key as text), compared
 *   bytewise; a (text, jsonb) key compares through the database collation and cost twice as much.
 */
import { createHash } from 'node:crypto';
import type { TableInfo } from '../catalog.js';
import { quoteIdent, quoteLiteral, quoteTable } from './ident.js';
import { jsonbOfColumns } from './jsonb.js';
import { ALREADY_PINNED, PINNED } from './types.js';

export const CAPTURE_TRIGGER = 'hubsync_capture';
/** Inserts into a plain whole-row table: one statement-level trigger over the inserted rows. */
export const CAPTURE_INSERT_TRIGGER = 'hubsync_capture_insert';
const NEW_ROWS = 'hubsync_new_rows';
export const TRUNCATE_TRIGGER = 'hubsync_no_truncate';

/** Name of the capture function of a table: readable, unique, within 63 bytes. */
export function captureFunctionName(table: string): string {
  const readable = table.replace(/[^A-Za-z0-9_]/g, '_').slice(0, 40);
  const hash = createHash('sha256').update(table).digest('hex').slice(0, 10);
  return `capture_${readable}_${hash}`;
}

/** Name of the helper that renders a row as text under the pinned settings (the slow path). */
export function textRowFunctionName(table: string): string {
  return captureFunctionName(table).replace(/^capture_/, 'textrow_');
}

/** `OPERATOR(pg_catalog.op)`: immune to a caller's search_path. */
const op = (o: string): string => `OPERATOR(pg_catalog.${o})`;

// Inside the generated functions every name is pg_catalog's, whatever the writer's search_path.
const jsonbOf = (record: string, columns: readonly string[]): string => jsonbOfColumns(record, columns, true);

/** The row_version key of table `tbl` (a literal) and key `k`. Also used by apply and publish. */
export function versionKeySql(tbl: string, k: string): string {
  return `(${tbl} ${op('||')} ' ' ${op('||')} ${k}::pg_catalog.text)`;
}

/** Now as an HLC: `wall_ms << 16`, never below the floor raised by remote timestamps. */
const NOW_HLC = `greatest(pg_catalog.floor(pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()) ${op('*')} 1000)::pg_catalog.int8 ${op('<<')} 16, (SELECT a.clock_floor FROM hubsync.apply_state a))`;

/** `rv.vv` with this branch's counter raised by one. */
const bumpedVv = (b: string): string =>
  `rv.vv ${op('||')} pg_catalog.jsonb_build_object(${b}, coalesce((rv.vv ${op('->>')} ${b})::pg_catalog.int8, 0) ${op('+')} 1)`;

/** Appends the change with version `nvv`/`nhlc` and learns whether the agent sleeps, in one statement. */
function logChange(tbl: string, kind: 'insert' | 'update' | 'delete', from: string): string {
  return `INSERT INTO hubsync.change_log (tx, tbl, op, pk, "row", old, hlc, vv)
      SELECT pg_catalog.pg_current_xact_id(), ${tbl}, '${kind}', k, ${kind === 'delete' ? 'NULL' : 'r'}, ${kind === 'insert' ? 'NULL' : 'o'}, v.hlc, v.vv FROM ${from}
      RETURNING (SELECT w.waiting FROM hubsync.wake w) INTO asleep;`;
}

/**
 * Bumps the row's version and appends the change. An update or delete finds the row's version
 * with a plain UPDATE (the row was written before, so it has one): cheaper than the upsert's
 * speculative insertion, which stays for inserts and for rows that predate the install. Writers
 * of one row are serialised by the row's own lock, so the UPDATE-then-upsert pair cannot race.
 */
function recordChange(tbl: string, branch: string, kind: 'insert' | 'update' | 'delete'): string {
  const b = quoteLiteral(branch);
  const upsert = `
    WITH v AS (
      INSERT INTO hubsync.row_version AS rv (key, tbl, pk, vv, hlc, origin, deleted)
      VALUES (${versionKeySql(tbl, 'k')}, ${tbl}, k, ${quoteLiteral(JSON.stringify({ [branch]: 1 }))}::pg_catalog.jsonb, ${NOW_HLC}, ${b}, ${kind === 'delete'})
      ON CONFLICT (key) DO UPDATE
        SET vv = ${bumpedVv(b)},
            hlc = greatest(excluded.hlc, rv.hlc ${op('+')} 1),
            origin = excluded.origin,
            deleted = excluded.deleted
      RETURNING rv.vv, rv.hlc
    )
    ${logChange(tbl, kind, 'v')}`;
  if (kind === 'insert') return upsert;
  return `
    UPDATE hubsync.row_version AS rv
       SET vv = ${bumpedVv(b)}, hlc = greatest(${NOW_HLC}, rv.hlc ${op('+')} 1), origin = ${b}, deleted = ${kind === 'delete'}
     WHERE rv.key ${op('=')} ${versionKeySql(tbl, 'k')}
     RETURNING rv.vv, rv.hlc INTO nvv, nhlc;
    IF FOUND THEN
      ${logChange(tbl, kind, '(SELECT nvv AS vv, nhlc AS hlc) v')}
    ELSE${upsert}
    END IF;`;
}

/**
 * The insert path of a whole-row table, set-based: every row a statement inserted (its
 * transition table) gets its version and outbox entry in one statement, instead of two
 * statements per row, which made multi-row inserts cost several times Bucardo's capture.
 */
function recordInserts(tbl: string, branch: string, rows: string): string {
  const b = quoteLiteral(branch);
  return `
    WITH n AS (${rows}),
    v AS (
      INSERT INTO hubsync.row_version AS rv (key, tbl, pk, vv, hlc, origin, deleted)
      SELECT ${versionKeySql(tbl, 'n.k')}, ${tbl}, n.k, ${quoteLiteral(JSON.stringify({ [branch]: 1 }))}::pg_catalog.jsonb, ${NOW_HLC}, ${b}, false FROM n
      ON CONFLICT (key) DO UPDATE
        SET vv = ${bumpedVv(b)},
            hlc = greatest(excluded.hlc, rv.hlc ${op('+')} 1),
            origin = excluded.origin,
            deleted = excluded.deleted
      RETURNING rv.pk, rv.vv, rv.hlc
    )
    INSERT INTO hubsync.change_log (tx, tbl, op, pk, "row", old, hlc, vv)
    SELECT pg_catalog.pg_current_xact_id(), ${tbl}, 'insert', n.k, n.r, NULL, v.hlc, v.vv FROM n JOIN v ON v.pk ${op('=')} n.k;
    SELECT w.waiting INTO asleep FROM hubsync.wake w;`;
}

/** The counter columns of `t` as a SQL text[] literal. */
export function additiveArraySql(t: TableInfo): string {
  return `${quoteLiteral(`{${t.additive.map((a) => `"${a.replace(/["\\]/g, '\\$&')}"`).join(',')}}`)}::pg_catalog.text[]`;
}

/**
 * The same for a column-level table (protocol/merge.ts): the row's column state is stamped by
 * `hubsync.stamp_columns` in the statement that bumps the version, and travels with the change.
 * An update or delete finds the version with a plain UPDATE, as the row-level path does; the
 * timestamp is taken once, so the version and the cells it stamps agree.
 */
function recordColumnChange(t: TableInfo, tbl: string, branch: string, kind: 'insert' | 'update' | 'delete'): string {
  const b = quoteLiteral(branch);
  const key = versionKeySql(tbl, 'k');
  const stamp = (prev: string, hlc: string, n: string): string =>
    `hubsync.stamp_columns(${prev}, ${kind === 'update' ? 'o' : 'NULL'}, ${kind === 'delete' ? 'NULL' : 'r'}, ${additiveArraySql(t)}, ${hlc}, ${b}, ${n})`;
  const nextN = `coalesce((rv.vv ${op('->>')} ${b})::pg_catalog.int8, 0) ${op('+')} 1`;
  const upsert = `
    INSERT INTO hubsync.row_version AS rv (key, tbl, pk, vv, hlc, origin, deleted, cols)
    VALUES (${key}, ${tbl}, k, ${quoteLiteral(JSON.stringify({ [branch]: 1 }))}::pg_catalog.jsonb, nh, ${b}, ${kind === 'delete'}, ${stamp('NULL', 'nh', '1')})
    ON CONFLICT (key) DO UPDATE
      SET vv = ${bumpedVv(b)},
          hlc = greatest(excluded.hlc, rv.hlc ${op('+')} 1),
          origin = excluded.origin,
          deleted = excluded.deleted,
          cols = ${stamp('rv.cols', `greatest(excluded.hlc, rv.hlc ${op('+')} 1)`, nextN)}
    RETURNING rv.vv, rv.hlc, rv.cols INTO nvv, nhlc, ncols;`;
  const update = `
    UPDATE hubsync.row_version AS rv
       SET vv = ${bumpedVv(b)}, hlc = greatest(nh, rv.hlc ${op('+')} 1), origin = ${b}, deleted = ${kind === 'delete'},
           cols = ${stamp('rv.cols', `greatest(nh, rv.hlc ${op('+')} 1)`, nextN)}
     WHERE rv.key ${op('=')} ${key}
     RETURNING rv.vv, rv.hlc, rv.cols INTO nvv, nhlc, ncols;
    IF NOT FOUND THEN${upsert}
    END IF;`;
  return `
    nh := ${NOW_HLC};${kind === 'insert' ? upsert : update}
    INSERT INTO hubsync.change_log (tx, tbl, op, pk, "row", old, hlc, vv, cols)
    VALUES (pg_catalog.pg_current_xact_id(), ${tbl}, '${kind}', k, ${kind === 'delete' ? 'NULL' : 'r'}, ${kind === 'insert' ? 'NULL' : 'o'}, nhlc, nvv, ncols)
    RETURNING (SELECT w.waiting FROM hubsync.wake w) INTO asleep;`;
}

export interface CaptureSql {
  readonly functionName: string;
  /** Creates or replaces the function and its triggers. */
  readonly install: string;
}

/**
 * The capture function and triggers of `t`, stamping changes with `branch` as origin.
 * Settings the text form depends on (only those the table's types need) are checked on each
 * call; a session that differs gets its rows rendered by a helper that pins them.
 */
export function captureSql(t: TableInfo, branch: string): CaptureSql {
  const fn = `hubsync.${quoteIdent(captureFunctionName(t.name))}`;
  const helper = `hubsync.${quoteIdent(textRowFunctionName(t.name))}`;
  const tbl = quoteLiteral(t.name);
  const record = (kind: 'insert' | 'update' | 'delete'): string => (t.merge === 'column' ? recordColumnChange(t, tbl, branch, kind) : recordChange(tbl, branch, kind));
  const names = t.columns.map((c) => c.name);
  const table = quoteTable(t.name);
  const pinned = t.pins.length > 0;
  // Key and row as text. When the table's types depend on settings, the fast path runs if the
  // session already has them (the usual case), else a helper with the settings in its SET clause
  // renders the row: a SET clause on the trigger itself would cost every write several µs.
  const keyFrom = (v: string) => `pg_catalog.jsonb_build_object(${t.pk.map((c) => `${quoteLiteral(c)}, ${v} ${op('->')} ${quoteLiteral(c)}`).join(', ')})`;
  // Key and row of NEW into k and r; of OLD into k and o (the row before, for routing).
  const build = (rec: 'NEW' | 'OLD'): string => {
    const v = rec === 'NEW' ? 'r' : 'o';
    const fast = `k := ${jsonbOf(rec, t.pk)};\n      ${v} := ${jsonbOf(rec, names)};`;
    if (!pinned) return fast;
    const slow = `${v} := ${helper}(${rec});\n      k := ${keyFrom(v)};`;
    return `IF fast THEN\n      ${fast}\n    ELSE\n      ${slow}\n    END IF;`;
  };
  const helperSql = pinned
    ? `
CREATE OR REPLACE FUNCTION ${helper}(rec anyelement) RETURNS pg_catalog.jsonb
  LANGUAGE sql STABLE${t.pins.map((p) => `\n  SET ${quoteIdent(p)} = ${quoteLiteral(PINNED[p])}`).join('')}
AS $hubsync$ SELECT ${jsonbOf('rec', names)} $hubsync$;`
    : '';
  // (A transition table row is an anonymous record: the helper gets it cast to the table type, as
  // `x.*`, since a column may be named x.)
  // Plain tables whose rows merge whole: inserts by statement. Column-level tables stamp each
  // row's cells, and a partitioned table's statement trigger would miss rows written to a
  // partition directly (its row triggers are cloned onto the partitions): both stay per row.
  const byStatement = t.relkind === 'r' && t.merge !== 'column';
  const fastRows = `SELECT ${jsonbOf('x', t.pk)} AS k, ${jsonbOf('x', names)} AS r FROM ${NEW_ROWS} x`;
  const statementPath = byStatement
    ? `
  IF TG_LEVEL ${op('=')} 'STATEMENT' THEN
    ${
      pinned
        ? `IF ${t.pins.map((p) => `(${ALREADY_PINNED[p]})`).join(` AND `)} THEN${recordInserts(tbl, branch, fastRows)}
    ELSE${recordInserts(tbl, branch, `SELECT ${keyFrom('y.r')} AS k, y.r FROM (SELECT ${helper}((x.*)::${table}) AS r FROM ${NEW_ROWS} x) y`)}
    END IF;`
        : recordInserts(tbl, branch, fastRows)
    }
    IF asleep THEN PERFORM pg_catalog.pg_notify('hubsync', ''); END IF;
    RETURN NULL;
  END IF;`
    : '';
  const install = `${helperSql}
CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER
AS $hubsync$
DECLARE
  k pg_catalog.jsonb;
  r pg_catalog.jsonb;
  o pg_catalog.jsonb;
  old_k pg_catalog.jsonb;
  new_k pg_catalog.jsonb;
  asleep pg_catalog.bool;
  fast pg_catalog.bool;
  nvv pg_catalog.jsonb;
  nhlc pg_catalog.int8;
  ncols pg_catalog.jsonb;
  nh pg_catalog.int8;
BEGIN
  -- The apply engine sets this: changes that came from the hub are not captured again.
  IF pg_catalog.current_setting('hubsync.applying', true) ${op('=')} 'on' THEN RETURN NULL; END IF;${statementPath}
  ${pinned ? `fast := ${t.pins.map((p) => `(${ALREADY_PINNED[p]})`).join(` AND `)};` : ''}
  IF TG_OP ${op('=')} 'INSERT' THEN
    ${build('NEW')}
    ${record('insert')}
  ELSIF TG_OP ${op('=')} 'UPDATE' THEN
    -- Binary image equality: true when nothing changed, whatever the column types.
    IF OLD ${op('*=')} NEW THEN RETURN NULL; END IF;
    ${build('OLD')}
    old_k := k;
    ${build('NEW')}
    IF old_k ${op('<>')} k THEN
      -- A new primary key is another row: a delete of the old key and an insert of the new one.
      new_k := k;
      k := old_k;
      ${record('delete')}
      k := new_k;
      ${record('insert')}
    ELSE
      ${record('update')}
    END IF;
  ELSE
    ${build('OLD')}
    ${record('delete')}
  END IF;
  -- NOTIFY only while the agent sleeps: a notifying commit takes a server-wide lock, so
  -- notifying on every write would serialise the commits of all writers.
  IF asleep THEN PERFORM pg_catalog.pg_notify('hubsync', ''); END IF;
  RETURN NULL;
END
$hubsync$;
${
  byStatement
    ? `CREATE OR REPLACE TRIGGER ${CAPTURE_TRIGGER} AFTER UPDATE OR DELETE ON ${table}
  FOR EACH ROW EXECUTE FUNCTION ${fn}();
CREATE OR REPLACE TRIGGER ${CAPTURE_INSERT_TRIGGER} AFTER INSERT ON ${table}
  REFERENCING NEW TABLE AS ${NEW_ROWS} FOR EACH STATEMENT EXECUTE FUNCTION ${fn}();`
    : `DROP TRIGGER IF EXISTS ${CAPTURE_INSERT_TRIGGER} ON ${table};
CREATE OR REPLACE TRIGGER ${CAPTURE_TRIGGER} AFTER INSERT OR UPDATE OR DELETE ON ${table}
  FOR EACH ROW EXECUTE FUNCTION ${fn}();`
}
${
  t.relkind === 'r'
    ? `CREATE OR REPLACE TRIGGER ${TRUNCATE_TRIGGER} BEFORE TRUNCATE ON ${table}
  FOR EACH STATEMENT EXECUTE FUNCTION hubsync.refuse_truncate();`
    : ''
}`;
  return { functionName: captureFunctionName(t.name), install };
}

/** Removes the triggers of a table that is no longer synced (the table may be gone already). */
export function dropCaptureSql(table: string, functionName: string, tableExists: boolean): string {
  const dropTruncate = tableExists
    ? `DROP TRIGGER IF EXISTS ${TRUNCATE_TRIGGER} ON ${quoteTable(table)};\nDROP TRIGGER IF EXISTS ${CAPTURE_INSERT_TRIGGER} ON ${quoteTable(table)};\n`
    : '';
  const helper = quoteIdent(functionName.replace(/^capture_/, 'textrow_'));
  return `${dropTruncate}DROP FUNCTION IF EXISTS hubsync.${quoteIdent(functionName)}() CASCADE;\nDROP FUNCTION IF EXISTS hubsync.${helper} CASCADE;`;
}
