/**
 * A tenant's routes compiled against its branches: who may send a table, and what each branch
 * receives of a change (the change, an eviction, or nothing). Pure; built by the directory each
 * time the tenant or one of its branches changes, and shared by admission, fan-out, catch-up
 * and snapshots, so every path decides alike (docs/sync-semantics.md "Routing").
 *
 * A branch is sent a change when the row after it is selected for the branch (the update of a
 * row it did not hold carries the whole row, so it arrives whole), an eviction when only the row
 * before it was (the row left its subset), a delete when the row before it was selected.
 * "Before" is the change's `old` values over its row; a change without them (from an agent of an
 * older schema) is judged by its row alone.
 */
import { isSchemaChange } from '../../protocol/schema-entry.js';
import type { Change } from '../../protocol/index.js';
import { equalityIndex, evaluate, parseFilter, type Filter } from './filter.js';
import { tableMatcher } from '../../protocol/table-pattern.js';
import { inGroups, type BranchRouting, type Route } from './route.js';

export type Decision = 'deliver' | 'evict' | 'skip';

type Row = Readonly<Record<string, unknown>>;

interface CompiledRoute {
  readonly route: Route;
  readonly matches: (table: string) => boolean;
  readonly filter: Filter | null;
  /** Branches whose groups are in `to`. */
  readonly receivers: ReadonlySet<string>;
  /** For a filter `col = branch.attr AND …`: receivers by (normalised) attribute value. */
  readonly index: { readonly column: string; readonly byValue: ReadonlyMap<string, readonly string[]> } | null;
}

/** Most table names whose matching routes are remembered (names come from the network). */
const TABLE_CACHE = 10_000;
const NUMBER = /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/;

/**
 * One key for values the filter's `=` may call equal: numbers by value, everything else by its
 * text. Collisions (huge numbers rounded alike) only add candidates, which are evaluated anyway.
 */
function indexKey(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return NUMBER.test(v) ? String(Number(v)) : `s:${v}`;
  if (typeof v === 'boolean') return `s:${String(v)}`;
  return `s:${JSON.stringify(v)}`;
}

export class RoutingPolicy {
  private readonly compiled: readonly CompiledRoute[];
  private readonly forTable = new Map<string, readonly CompiledRoute[]>();

  private constructor(
    routes: readonly Route[],
    private readonly branches: ReadonlyMap<string, BranchRouting>,
  ) {
    this.compiled = routes.map((route) => this.compile(route));
  }

  /** null for a tenant without routes: everything goes to everyone, and nothing is evaluated. */
  static of(routes: readonly Route[], branches: ReadonlyMap<string, BranchRouting>): RoutingPolicy | null {
    return routes.length === 0 ? null : new RoutingPolicy(routes, branches);
  }

  /** Whether `branch` may send changes of `table`. */
  maySend(branch: string, table: string): boolean {
    const groups = this.groupsOf(branch);
    return this.routesOf(table).some((r) => inGroups(groups, r.route.from));
  }

  /** The table patterns `branch` may send (told to its agent in hello). */
  sendTables(branch: string): string[] {
    const groups = this.groupsOf(branch);
    const out = new Set<string>();
    for (const r of this.compiled) if (inGroups(groups, r.route.from)) for (const t of r.route.tables) out.add(t);
    return [...out].sort();
  }

  /**
   * What `branch` receives of `c`. Its own change only ever comes back as an eviction: a write
   * that took the row out of the branch's own subset (a store handing a customer to another).
   */
  decide(branch: string, c: Change): Decision {
    if (isSchemaChange(c)) return branch === c.origin ? 'skip' : 'deliver';
    // Only the hub writes evictions into the log, as route repairs targeted at one branch.
    if (c.evict === true) return 'deliver';
    return this.decideWith(branch, c, this.sending(c), rowBefore(c));
  }

  /** `decide` with the routes carrying `c` and its old row already found (once per change). */
  private decideWith(branch: string, c: Change, routes: readonly CompiledRoute[], before: Row | null): Decision {
    if (branch === c.origin) return this.decideOwn(branch, c, routes);
    const attributes = this.branches.get(branch)?.attributes ?? {};
    let any = false;
    let selAfter = false;
    let selBefore = false;
    for (const r of routes) {
      if (!r.receivers.has(branch)) continue;
      any = true;
      if (r.filter === null) return 'deliver';
      if (!selAfter && c.row !== null && evaluate(r.filter, c.row, attributes)) selAfter = true;
      if (!selBefore && before !== null && evaluate(r.filter, before, attributes)) selBefore = true;
    }
    if (!any) return 'skip';
    switch (c.op) {
      case 'insert':
        return selAfter ? 'deliver' : 'skip';
      case 'update':
        return selAfter ? 'deliver' : selBefore ? 'evict' : 'skip';
      case 'delete':
        // Without the old row the hub cannot tell who held it: every receiver of the table gets it.
        return before === null || selBefore ? 'deliver' : 'skip';
    }
  }

  private decideOwn(branch: string, c: Change, routes: readonly CompiledRoute[] = this.sending(c)): Decision {
    if (c.row === null) return 'skip';
    const attributes = this.branches.get(branch)?.attributes ?? {};
    let any = false;
    for (const r of routes) {
      if (!r.receivers.has(branch)) continue;
      if (r.filter === null || evaluate(r.filter, c.row, attributes)) return 'skip';
      any = true;
    }
    return any ? 'evict' : 'skip';
  }

  /**
   * Every branch that receives something of `c`, with what. Work grows with the candidates:
   * receivers of the routes that carry the change, narrowed by the attribute index when the
   * filter has one, so a store's sale is evaluated for hq and that store, not for every store.
   */
  receivers(c: Change): Map<string, Exclude<Decision, 'skip'>> {
    // Schema changes reach every branch, whatever the routes.
    if (isSchemaChange(c)) return new Map([...this.branches.keys()].map((b) => [b, 'deliver' as const]));
    const candidates = new Set<string>();
    const before = rowBefore(c);
    const routes = this.sending(c);
    for (const r of routes) {
      if (r.index === null) {
        for (const b of r.receivers) candidates.add(b);
        continue;
      }
      for (const row of [c.row, before]) {
        const key = row === null ? null : indexKey(row[r.index.column]);
        if (key !== null) for (const b of r.index.byValue.get(key) ?? []) candidates.add(b);
      }
      // A delete without its old row goes to every receiver (see decide).
      if (c.op === 'delete' && before === null) for (const b of r.receivers) candidates.add(b);
    }
    candidates.add(c.origin);
    const out = new Map<string, Exclude<Decision, 'skip'>>();
    for (const b of candidates) {
      const d = this.decideWith(b, c, routes, before);
      if (d !== 'skip') out.set(b, d);
    }
    return out;
  }

  /**
   * Whether a snapshot for `branch` holds version `v` of a row: a kept version is the row as it
   * stands, whatever changed it, so it is judged by its row (a tombstone by the row it removed,
   * when known). Its own versions count like anyone's: a branch bootstrapping again gets back
   * the rows of its subset that it wrote.
   */
  holds(branch: string, v: Change): boolean {
    if (isSchemaChange(v)) return true;
    const row = v.op === 'delete' ? (v.old ?? null) : v.row;
    const attributes = this.branches.get(branch)?.attributes ?? {};
    for (const r of this.sending(v)) {
      if (!r.receivers.has(branch)) continue;
      if (r.filter === null || row === null || evaluate(r.filter, row, attributes)) return true;
    }
    return false;
  }

  /** Whether `branch` keeps version `v`: it would receive it, or wrote it and no route takes it away. */
  keeps(branch: string, v: Change): boolean {
    return this.holds(branch, v) || (v.origin === branch && v.row !== null && this.decideOwn(branch, v) === 'skip');
  }

  /** Whether a change of `table` can move a row between subsets: a route carrying it has a filter. */
  filters(table: string): boolean {
    return this.routesOf(table).some((r) => r.filter !== null);
  }

  /** Routes that carry changes of `c.table` from `c.origin`. */
  private sending(c: Change): CompiledRoute[] {
    const groups = this.groupsOf(c.origin);
    return this.routesOf(c.table).filter((r) => inGroups(groups, r.route.from));
  }

  private groupsOf(branch: string): readonly string[] {
    return this.branches.get(branch)?.groups ?? [];
  }

  private routesOf(table: string): readonly CompiledRoute[] {
    let routes = this.forTable.get(table);
    if (!routes) {
      routes = this.compiled.filter((r) => r.matches(table));
      if (this.forTable.size >= TABLE_CACHE) this.forTable.clear();
      this.forTable.set(table, routes);
    }
    return routes;
  }

  private compile(route: Route): CompiledRoute {
    const matchers = route.tables.map(tableMatcher);
    const receivers = new Set<string>();
    for (const [id, b] of this.branches) if (inGroups(b.groups, route.to)) receivers.add(id);
    const filter = route.filter === undefined ? null : parseFilter(route.filter);
    const eq = filter === null ? null : equalityIndex(filter);
    let index: CompiledRoute['index'] = null;
    if (eq !== null) {
      const byValue = new Map<string, string[]>();
      for (const id of receivers) {
        const key = indexKey(this.branches.get(id)?.attributes[eq.attribute]);
        if (key === null) continue;
        const list = byValue.get(key);
        if (list) list.push(id);
        else byValue.set(key, [id]);
      }
      index = { column: eq.column, byValue };
    }
    return { route, matches: (t) => matchers.some((m) => m(t)), filter, receivers, index };
  }
}

/** The row as it was before `c`: update = row with the changed columns' old values; delete = old. */
function rowBefore(c: Change): Row | null {
  if (c.op === 'update') return c.old && c.row ? { ...c.row, ...c.old } : c.row;
  if (c.op === 'delete') return c.old ?? null;
  return null;
}
