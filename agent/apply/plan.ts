/**
 * What one apply transaction writes, decided before it begins. Pure.
 *
 * The engine reads the rows a chunk touches (without locking them), then this module replays the
 * chunk's changes in order against what it read, exactly as applying them one by one would:
 * `resolve()` per change against the row's version at that point, conflicts recorded against
 * the row as it stood then. What remains is each row's final state, written once: a hot row
 * changed by 500 source transactions costs one UPDATE, not 500. The transaction then checks,
 * under lock, that every row is still as read (else it is planned again) and writes the plan.
 */
import { resolve, strategyFor, type Decision, type Strategy, type Version } from '../../protocol/conflict.js';
import { impliedColumns, joinColumns, rowOf, untrackedColumns, type ColumnState } from '../../protocol/merge.js';
import { decodeHlc, hlcToBigInt } from '../../protocol/hlc.js';
import type { Change, Row, StrategyName, TenantPolicy } from '../../protocol/messages.js';
import type { TableInfo } from '../catalog.js';
import { checkChange } from '../change-check.js';
import { incomingVersion } from '../reports.js';

export interface Item {
  /** Hub log offset; null for snapshot rows. */
  readonly offset: number | null;
  readonly change: Change;
}

/** A row as the read before the transaction found it. */
export interface RowRead {
  /** The key in canonical text form, as the database prints it. */
  readonly pk: Readonly<Record<string, string>>;
  /** `pk` as jsonb text: with the table name, the row's key in `hubsync.row_version`. */
  readonly pkText: string;
  /** Column → text form; null when the row does not exist. */
  readonly cur: Readonly<Record<string, string | null>> | null;
  readonly version: Version | null;
  /** The stored version exactly as read (HLC as SQL bigint text), for the check under lock. */
  readonly stored: { readonly hlc: string; readonly vv: unknown } | null;
  /** Column-level tables: the row's column state (protocol/merge.ts); null when not tracked. */
  readonly cols: ColumnState | null;
}

export interface PlanContext {
  readonly policy: TenantPolicy;
  readonly tables: ReadonlyMap<string, TableInfo>;
  readonly branchId: string;
  readonly maxSkewMs: number;
  readonly now: number;
}

/** How a row's final state is written. `replace`: deleted and inserted again within the chunk. */
export type RowWrite = 'none' | 'insert' | 'update' | 'delete' | 'replace';

export interface RowPlan {
  readonly table: TableInfo;
  /** Key values as sent (the canonical text form, or the change was dead-lettered). */
  readonly key: readonly string[];
  readonly read: RowRead;
  readonly write: RowWrite;
  /** Columns to write and their text values: all given since the row was (re)inserted, or the non-key ones changed. */
  readonly columns: readonly string[];
  readonly values: readonly (string | null)[];
  /** The version after the chunk; null: forgotten (the hub evicted the row: it left this branch's subset). */
  readonly version: Version | null;
  /** The column state after the chunk (column-level tables). */
  readonly cols: ColumnState | null;
}

export interface ConflictPlan {
  readonly table: string;
  readonly pk: Readonly<Record<string, string>>;
  readonly strategy: StrategyName;
  readonly winner: 'local' | 'incoming';
  readonly local: Version;
  readonly incoming: Version;
  readonly localRow: Row | null;
  readonly incomingRow: Row | null;
  readonly offset: number | null;
  /** This branch's own version won: it reports the conflict to the hub. */
  readonly report: boolean;
  /** Column-level tables: the columns both sides wrote (one write lost) and those merged. */
  readonly columns: { readonly conflicted: readonly string[]; readonly merged: readonly string[] } | null;
}

export interface DeadLetterPlan {
  readonly item: Item;
  readonly reason: string;
  readonly sqlstate: string | null;
  readonly strategy: StrategyName;
  readonly local: Version | null;
}

export interface Plan {
  /** Rows with something to write (a row, a version or both), in chunk order of first touch. */
  readonly rows: readonly RowPlan[];
  readonly conflicts: readonly ConflictPlan[];
  readonly deadLetters: readonly DeadLetterPlan[];
  readonly applied: number;
  readonly skipped: number;
  /** Concurrent changes of column-level rows that merged without losing a write (no conflict recorded). */
  readonly merged: number;
  /** Remote timestamps beyond the skew limit (applied, but the local clock does not follow). */
  readonly skewed: number;
  /** Highest HLC within the skew limit, as SQL bigint; the local clock's floor rises to it. */
  readonly floor: bigint;
  /** The cursor after the chunk (deliveries); the cursor read, for snapshot chunks. */
  readonly top: number;
}

/** Identity of a row within a chunk: table and key values as sent. */
export function rowIdentity(table: string, key: readonly string[]): string {
  return `${table}\u0000${key.join('\u0000')}`;
}

/** A change forced to the dead letters (isolated retry of a change the database refused). */
export interface Forced {
  readonly reason: string;
  readonly sqlstate: string | null;
}

interface State {
  readonly table: TableInfo;
  readonly key: readonly string[];
  readonly read: RowRead;
  present: boolean;
  /** Column → value as it stands; after a re-insert, only what that insert carried. */
  values: Map<string, string | null>;
  touched: Set<string>;
  reborn: boolean;
  version: Version | null;
  cols: ColumnState | null;
  changed: boolean;
}

/** The rows a chunk needs read: identity → table and key, for changes that pass `checkChange`. */
export function rowsToRead(items: readonly Item[], tables: ReadonlyMap<string, TableInfo>, forced?: ReadonlyMap<number, Forced>): Map<string, { table: TableInfo; key: readonly string[] }> {
  const out = new Map<string, { table: TableInfo; key: readonly string[] }>();
  items.forEach((it, i) => {
    if (forced?.has(i)) return;
    const c = checkChange(it.change, tables);
    if (c.ok) out.set(rowIdentity(c.table.name, c.key), { table: c.table, key: c.key });
  });
  return out;
}

export function planChunk(input: {
  readonly items: readonly Item[];
  /** The cursor read; null for snapshot chunks (offsets are not compared). */
  readonly cursor: number | null;
  readonly reads: ReadonlyMap<string, RowRead>;
  readonly ctx: PlanContext;
  readonly forced?: ReadonlyMap<number, Forced>;
}): Plan {
  const { items, cursor, reads, ctx, forced } = input;
  const strategy = (t: TableInfo | undefined): Strategy => strategyFor(ctx.policy, t?.strategy);
  const states = new Map<string, State>();
  const conflicts: ConflictPlan[] = [];
  const deadLetters: DeadLetterPlan[] = [];
  let applied = 0;
  let skipped = 0;
  let merged = 0;
  let skewed = 0;
  let floor = 0n;
  let top = cursor ?? 0;

  items.forEach((it, i) => {
    if (cursor !== null) {
      const off = it.offset ?? 0;
      if (off <= top) {
        skipped++;
        return;
      }
      top = off;
    }
    const h = decodeHlc(it.change.hlc);
    if (h.wall - ctx.now > ctx.maxSkewMs) skewed++;
    else {
      const b = hlcToBigInt(h);
      if (b > floor) floor = b;
    }
    const t = ctx.tables.get(it.change.table);
    const dead = (reason: string, sqlstate: string | null, local: Version | null): void => {
      deadLetters.push({ item: it, reason, sqlstate, strategy: strategy(t).name, local });
    };
    const c = checkChange(it.change, ctx.tables);
    const f = forced?.get(i);
    if (f) {
      const read = c.ok ? reads.get(rowIdentity(c.table.name, c.key)) : undefined;
      const s = c.ok ? states.get(rowIdentity(c.table.name, c.key)) : undefined;
      dead(f.reason, f.sqlstate, s ? s.version : (read?.version ?? null));
      return;
    }
    if (!c.ok) {
      dead(c.reason, null, null);
      return;
    }
    const id = rowIdentity(c.table.name, c.key);
    const read = reads.get(id);
    if (!read) throw new Error(`no read for a row of ${c.table.name}`);
    const mismatch = c.table.pk.find((col, j) => read.pk[col] !== c.key[j]);
    if (mismatch !== undefined) {
      dead(
        `key value ${JSON.stringify(it.change.pk[mismatch])} of ${mismatch} is not in the canonical text form of its type (${JSON.stringify(read.pk[mismatch])})`,
        null,
        null,
      );
      return;
    }
    let s = states.get(id);
    if (!s) {
      s = {
        table: c.table,
        key: c.key,
        read,
        present: read.cur !== null,
        values: new Map(Object.entries(read.cur ?? {})),
        touched: new Set(),
        reborn: false,
        version: read.version,
        cols: read.cols,
        changed: false,
      };
      states.set(id, s);
    }
    if (it.change.evict === true) {
      // Routing took the row out of this branch's subset: drop the copy and its version, no
      // tombstone (the row lives on elsewhere), nothing to resolve. Unless the copy is a version
      // that beats the one the eviction is for: then the eviction is stale, the newer version's
      // own routing decides (and the hub's route repair evicts it if it must, hub/routes/repair.ts).
      if (s.version !== null && evictionIsStale(s.version, incomingVersion(it.change), strategy(c.table))) {
        skipped++;
        return;
      }
      applied++;
      s.present = false;
      s.version = null;
      s.cols = null;
      s.changed = true;
      return;
    }
    const local = s.version;
    const incoming = incomingVersion(it.change);
    const st = strategy(c.table);
    const decision = resolve(local, incoming, st);
    if (decision.action === 'skip') {
      skipped++;
      return;
    }
    if (c.table.merge === 'column') {
      const out = mergeColumns(s, it, incoming, decision, st);
      applied++;
      if (out.conflict) conflicts.push({ ...out.conflict, offset: it.offset, report: out.conflict.winner === 'local' && local?.origin === ctx.branchId });
      else if (decision.action === 'conflict') merged++;
      return;
    }
    if (decision.action === 'conflict' && local !== null) {
      conflicts.push({
        table: c.table.name,
        pk: read.pk,
        strategy: st.name,
        winner: decision.winner,
        local,
        incoming,
        localRow: s.present ? Object.fromEntries(s.values) : null,
        incomingRow: it.change.row,
        offset: it.offset,
        report: decision.winner === 'local' && local.origin === ctx.branchId,
        columns: null,
      });
    }
    if (decision.action === 'apply' || decision.winner === 'incoming') {
      applied++;
      if (it.change.op === 'delete') {
        s.present = false;
      } else if (s.present) {
        c.columns.forEach((col, j) => {
          if (c.table.pk.includes(col)) return;
          s.values.set(col, c.values[j] ?? null);
          s.touched.add(col);
        });
      } else {
        if (read.cur !== null) s.reborn = true;
        s.present = true;
        s.values = new Map(c.columns.map((col, j) => [col, c.values[j] ?? null]));
        s.touched = new Set(c.columns);
      }
    }
    s.version = decision.version;
    s.changed = true;
  });

  const rows: RowPlan[] = [];
  for (const s of states.values()) {
    if (!s.changed) continue;
    // Evicted, and there was nothing here to drop.
    if (s.version === null && s.read.stored === null && s.read.cur === null) continue;
    const was = s.read.cur !== null;
    let write: RowWrite;
    let columns: string[] = [];
    if (!s.present) write = was ? 'delete' : 'none';
    else if (!was || s.reborn) {
      write = was ? 'replace' : 'insert';
      columns = [...s.values.keys()];
    } else {
      columns = s.table.columns.map((x) => x.name).filter((n) => s.touched.has(n) && !s.table.pk.includes(n));
      write = columns.length > 0 ? 'update' : 'none';
    }
    // Columns in table order, so rows written alike share one statement.
    const order = new Map(s.table.columns.map((x, j) => [x.name, j]));
    columns.sort((a, b) => (order.get(a) ?? 0) - (order.get(b) ?? 0));
    rows.push({ table: s.table, key: s.key, read: s.read, write, columns, values: columns.map((x) => s.values.get(x) ?? null), version: s.version, cols: s.cols });
  }
  return { rows, conflicts, deadLetters, applied, skipped, merged, skewed, floor, top };
}

/**
 * Applies a change to a row of a column-level table: whether the row exists is `decision`'s
 * (the strategy's, as for whole rows), its columns the join of both states. Returns the conflict
 * to record: a delete against a concurrent update, or a column both sides wrote; a clean merge
 * is not one.
 */
function mergeColumns(
  s: State,
  it: Item,
  incoming: Version,
  decision: Exclude<Decision, { action: 'skip' }>,
  strategy: Strategy,
): { conflict: Omit<ConflictPlan, 'offset' | 'report'> | null } {
  const t = s.table;
  const additive = new Set(t.additive);
  const local = s.version;
  const localCols = s.cols ?? (s.present ? untrackedColumns(Object.fromEntries(s.values), additive) : {});
  const incomingCols = it.change.cols ?? impliedColumns(it.change, incoming, additive, t.pk);
  const joined = joinColumns(localCols, incomingCols, strategy, local?.vv ?? {}, incoming.vv);
  let conflict: Omit<ConflictPlan, 'offset' | 'report'> | null = null;
  if (decision.action === 'conflict' && local !== null && (local.deleted !== incoming.deleted || joined.conflicted.length > 0)) {
    conflict = {
      table: t.name,
      pk: s.read.pk,
      strategy: strategy.name,
      winner: decision.winner,
      local,
      incoming,
      localRow: s.present ? Object.fromEntries(s.values) : null,
      incomingRow: it.change.row,
      columns: { conflicted: joined.conflicted, merged: joined.merged },
    };
  }
  const names = t.columns.map((x) => x.name);
  const text = (v: unknown): string | null => (v === null || v === undefined ? null : typeof v === 'string' ? v : JSON.stringify(v));
  const values = rowOf(joined.cols, names);
  if (decision.version.deleted) {
    s.present = false;
  } else if (s.present) {
    for (const col of names) {
      if (t.pk.includes(col) || !Object.hasOwn(values, col)) continue;
      const v = text(values[col]);
      if (s.values.get(col) !== v) {
        s.values.set(col, v);
        s.touched.add(col);
      }
    }
  } else {
    if (s.read.cur !== null) s.reborn = true;
    s.present = true;
    const row = it.change.row ?? {};
    s.values = new Map(names.map((col) => [col, text(Object.hasOwn(values, col) ? values[col] : row[col])]));
    s.touched = new Set(names);
  }
  s.cols = joined.cols;
  s.version = decision.version;
  s.changed = true;
  return { conflict };
}

/** Whether `local` beats the version an eviction is for (an equal version is the one evicted). */
function evictionIsStale(local: Version, evicted: Version, st: Strategy): boolean {
  const d = resolve(local, evicted, st);
  return (d.action === 'skip' && d.reason === 'stale') || (d.action === 'conflict' && d.winner === 'local');
}
