/**
 * Column-level merge (docs/sync-semantics.md "Column-level tables and counters"). Pure.
 *
 * A row of a column-level table carries, next to its row version, the state of each column:
 * - a plain column is a register: its value and the write that set it (a `Cell`);
 * - an additive (counter) column is the value it was inserted with (`base`, a Cell) plus, per
 *   branch, the sum of that branch's changes to it since that insert (`by`).
 * Every change carries the whole state as its writer had it, so two states are merged by a join
 * (per column the greater cell, per branch the later contribution): the result does not depend
 * on the order, on duplicates, on compaction or on a snapshot in between. Whether the row
 * exists is the row version's business (protocol/conflict.ts), decided by the table's strategy
 * as for whole-row tables; the columns of a deleted row are remembered, so a concurrent update
 * that wins against the delete merges with them like any other.
 */
import type { Strategy, Version } from './conflict.js';
import type { Row, Value, VersionVector } from './messages.js';

/**
 * The write that last set a column: its value, HLC (16 hex digits), origin, the origin's write
 * counter for the row after that write (`n`, tells whether another state has seen it), and
 * `best`: the highest-priority branch among the writers of this column up to that write (under
 * branch-priority a write inherits the rank of what it overwrote, so order agrees with causality).
 */
export type Cell = [value: Value, hlc: string, origin: string, n: number, best: string];

/** One branch's changes to a counter since the insert whose cell is (baseHlc, baseOrigin). */
export type Contribution = [sum: string, n: number, baseHlc: string, baseOrigin: string];

// Mutable types, as the wire schema (messages.ts ColumnStateSchema) infers them; never mutated here.
export interface CounterState {
  b: Cell;
  d: Record<string, Contribution>;
}

export type ColumnValue = Cell | CounterState;
export type ColumnState = Record<string, ColumnValue>;

/** A cell no real write loses to: the state of a column written before columns were tracked. */
export const ZERO_HLC = '0000000000000000';
export const zeroCell = (value: Value): Cell => [value, ZERO_HLC, '', 0, ''];

export const isCounter = (v: ColumnValue): v is CounterState => !Array.isArray(v);

function rankOf(priority: readonly string[], branch: string): number {
  const i = priority.indexOf(branch);
  return i === -1 ? priority.length : i;
}

/** Total order on cells: true when `a` beats `b` (strategy rank, then HLC, origin, value). */
export function cellBeats(a: Cell, b: Cell, strategy: Strategy): boolean {
  if (strategy.name === 'branch-priority') {
    const ra = rankOf(strategy.priority, a[4]);
    const rb = rankOf(strategy.priority, b[4]);
    if (ra !== rb) return ra < rb;
  }
  if (a[1] !== b[1]) return a[1] > b[1];
  if (a[2] !== b[2]) return a[2] > b[2];
  if (a[3] !== b[3]) return a[3] > b[3];
  return JSON.stringify(a[0]) > JSON.stringify(b[0]);
}

const sameCell = (a: Cell, b: Cell): boolean => a[1] === b[1] && a[2] === b[2] && a[3] === b[3] && JSON.stringify(a[0]) === JSON.stringify(b[0]);

/** Whether a state with vector `vv` has seen the write that made `cell`. */
const seen = (vv: VersionVector, cell: Cell): boolean => cell[2] === '' || (Object.hasOwn(vv, cell[2]) ? (vv[cell[2]] ?? 0) : 0) >= cell[3];

function joinCounter(a: CounterState, b: CounterState, strategy: Strategy): CounterState {
  const base = cellBeats(b.b, a.b, strategy) ? b.b : a.b;
  const d: Record<string, Contribution> = {};
  // Contributions to an older base no longer count and never will again (the base only grows).
  for (const side of [a.d, b.d]) {
    for (const [branch, c] of Object.entries(side)) {
      if (c[2] !== base[1] || c[3] !== base[2]) continue;
      const mine = Object.hasOwn(d, branch) ? d[branch] : undefined;
      if (mine === undefined || c[1] > mine[1]) d[branch] = c;
    }
  }
  return { b: base, d };
}

export interface Joined {
  readonly cols: ColumnState;
  /** Columns both states wrote without seeing the other's write, and whose values differed: one write was lost. */
  readonly conflicted: readonly string[];
  /** Columns the result took from `incoming` while keeping others of `local`, or counters that added up both. */
  readonly merged: readonly string[];
}

/**
 * The join of two column states of one row. `localVv` and `incomingVv` are the row versions'
 * vectors, used only to tell conflicts (both wrote a column unseen by the other) from merges.
 */
export function joinColumns(local: ColumnState, incoming: ColumnState, strategy: Strategy, localVv: VersionVector, incomingVv: VersionVector): Joined {
  const out: Record<string, ColumnValue> = { ...local };
  const conflicted: string[] = [];
  const merged: string[] = [];
  for (const [col, inc] of Object.entries(incoming)) {
    const mine = Object.hasOwn(local, col) ? local[col] : undefined;
    if (mine === undefined) {
      out[col] = inc;
      continue;
    }
    if (isCounter(inc) && isCounter(mine)) {
      const j = joinCounter(mine, inc, strategy);
      out[col] = j;
      const addsBoth = Object.entries(inc.d).some(([b, c]) => (mine.d[b]?.[1] ?? 0) < c[1]) && Object.entries(mine.d).some(([b, c]) => (inc.d[b]?.[1] ?? 0) < c[1]);
      if (addsBoth) merged.push(col);
      continue;
    }
    // A counter against a plain cell (the declarations differ between branches): the counter's base stands for it.
    const a = isCounter(mine) ? mine.b : mine;
    const b = isCounter(inc) ? inc.b : inc;
    if (sameCell(a, b)) continue;
    const incomingWins = cellBeats(b, a, strategy);
    out[col] = incomingWins ? inc : mine;
    if (!seen(incomingVv, a) && !seen(localVv, b) && JSON.stringify(a[0]) !== JSON.stringify(b[0])) conflicted.push(col);
    else if (incomingWins && !seen(localVv, b)) merged.push(col);
  }
  return { cols: out, conflicted, merged: merged.filter((c) => !conflicted.includes(c)) };
}

/**
 * Adds decimal numbers given in text form (integer and numeric columns), exactly. Returns null
 * when `base` is null and nothing was added.
 */
export function addDecimals(base: string | null, terms: readonly string[]): string | null {
  if (base === null && terms.length === 0) return null;
  const all = [base ?? '0', ...terms];
  const parsed = all.map((t) => {
    const m = /^([+-]?)(\d*)(?:\.(\d*))?$/.exec(t.trim());
    if (!m || (m[2] === '' && (m[3] ?? '') === '')) throw new Error(`not a number: ${JSON.stringify(t.slice(0, 40))}`);
    return { neg: m[1] === '-', int: m[2] ?? '', frac: m[3] ?? '' };
  });
  const scale = Math.max(...parsed.map((p) => p.frac.length));
  let sum = 0n;
  for (const p of parsed) {
    const v = BigInt(`${p.int || '0'}${p.frac.padEnd(scale, '0')}`);
    sum += p.neg ? -v : v;
  }
  const neg = sum < 0n;
  const digits = (neg ? -sum : sum).toString().padStart(scale + 1, '0');
  const int = digits.slice(0, digits.length - scale);
  const frac = digits.slice(digits.length - scale);
  return `${neg ? '-' : ''}${int}${scale > 0 ? `.${frac}` : ''}`;
}

/** The value a column state stands for: a cell's value, or a counter's base plus the contributions made since it. */
export function valueOf(v: ColumnValue): Value {
  if (!isCounter(v)) return v[0];
  const terms = Object.values(v.d)
    .filter((c) => c[2] === v.b[1] && c[3] === v.b[2])
    .map((c) => c[0]);
  const base = v.b[0];
  return addDecimals(base === null ? null : String(base), terms);
}

/** The row a column state stands for, over `columns` (those absent from the state are left out). */
export function rowOf(cols: ColumnState, columns: readonly string[]): Row {
  const row: Record<string, Value> = {};
  for (const c of columns) if (Object.hasOwn(cols, c)) row[c] = valueOf(cols[c] as ColumnValue);
  return row;
}

/**
 * The column state a change implies when it carries none (a sender whose table is not column-
 * level, or an agent before hubsync 4): every column it sets, stamped with the change's own
 * version; for an update only the columns it changed (`old` names them). Counter columns take
 * the value as a new base: such a sender cannot say by how much it changed them.
 */
export function impliedColumns(
  c: { readonly op: 'insert' | 'update' | 'delete'; readonly row: Row | null; readonly old?: Row },
  v: Version,
  additive: ReadonlySet<string>,
  pk: readonly string[],
): ColumnState {
  if (c.row === null) return {};
  const n = Object.hasOwn(v.vv, v.origin) ? (v.vv[v.origin] ?? 0) : 0;
  const out: Record<string, ColumnValue> = {};
  for (const [col, value] of Object.entries(c.row)) {
    if (c.op === 'update' && c.old !== undefined && !Object.hasOwn(c.old, col) && !pk.includes(col)) continue;
    const cell: Cell = [value, v.hlc, v.origin, n, v.origin];
    out[col] = additive.has(col) ? { b: cell, d: {} } : cell;
  }
  return out;
}

/** The state of a row that exists here but has no column state yet: every column at the zero cell. */
export function untrackedColumns(row: Row, additive: ReadonlySet<string>): ColumnState {
  const out: Record<string, ColumnValue> = {};
  for (const [col, value] of Object.entries(row)) out[col] = additive.has(col) ? { b: zeroCell(value), d: {} } : zeroCell(value);
  return out;
}


