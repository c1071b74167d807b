/**
 * Checks an incoming change against the installed tables before anything is executed: the
 * table must be synced here, the key must be exactly its primary key, and every column must be
 * one the agent carries (or carried, before a schema change dropped or renamed it). Identifiers in SQL always come from the catalog side of this check,
 * never from the change. Pure.
 */
import type { Change, Value } from '../protocol/messages.js';
import type { TableInfo } from './catalog.js';

export interface CheckedChange {
  readonly ok: true;
  readonly table: TableInfo;
  /** Key values in the table's key order, as text. */
  readonly key: readonly string[];
  /** Row columns to write (catalog names, table order) and their text values; empty for deletes. */
  readonly columns: readonly string[];
  readonly values: readonly (string | null)[];
}

export type CheckResult = CheckedChange | { readonly ok: false; readonly reason: string };

/** Text form of a wire value: agents send strings; other JSON is passed on as its JSON text. */
export function textOf(v: Value): string | null {
  if (v === null) return null;
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function show(s: string): string {
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);
}

export function checkChange(change: Change, tables: ReadonlyMap<string, TableInfo>): CheckResult {
  const table = tables.get(change.table);
  if (!table) return { ok: false, reason: `table ${show(change.table)} is not synced here` };
  const vvOwn = change.vv[change.origin];
  if (vvOwn === undefined || vvOwn < 1) {
    return { ok: false, reason: `version vector has no entry for its origin ${change.origin}` };
  }
  const pkNames = Object.keys(change.pk);
  for (const k of pkNames) {
    if (!table.pk.includes(k)) return { ok: false, reason: `key column ${show(k)} is not the primary key of ${table.name}` };
  }
  const key: string[] = [];
  for (const k of table.pk) {
    const v = change.pk[k];
    if (v === undefined) return { ok: false, reason: `key of ${table.name} lacks column ${show(k)}` };
    const t = textOf(v);
    if (t === null) return { ok: false, reason: `key column ${show(k)} is null` };
    key.push(t);
  }
  if (change.op === 'delete') return { ok: true, table, key, columns: [], values: [] };
  if (change.row === null) return { ok: false, reason: `${change.op} without a row` };
  const carried = new Set(table.columns.map((c) => c.name));
  let row = change.row;
  for (const [k, v] of Object.entries(change.row)) {
    if (!carried.has(k)) {
      // Written before a schema change dropped or renamed the column here: dropped is ignored,
      // renamed is written under its new name (unless the row has that one too).
      const now = table.retired && Object.hasOwn(table.retired, k) ? table.retired[k] : undefined;
      if (now === undefined) return { ok: false, reason: `column ${show(k)} is not synced in ${table.name}` };
      if (row === change.row) row = { ...change.row };
      delete row[k];
      if (now !== null && carried.has(now) && !Object.hasOwn(change.row, now)) row[now] = v;
      continue;
    }
    const i = table.pk.indexOf(k);
    if (i !== -1 && textOf(v) !== key[i]) return { ok: false, reason: `row and key disagree on ${show(k)}` };
  }
  const columns: string[] = [];
  const values: (string | null)[] = [];
  for (const c of table.columns) {
    const i = table.pk.indexOf(c.name);
    if (i !== -1) {
      columns.push(c.name);
      values.push(key[i] ?? null);
    } else if (Object.hasOwn(row, c.name)) {
      columns.push(c.name);
      values.push(textOf(row[c.name] ?? null));
    }
  }
  return { ok: true, table, key, columns, values };
}
