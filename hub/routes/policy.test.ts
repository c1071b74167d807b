import { schemaChange } from '../../protocol/schema-entry.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Change } from '../../protocol/index.js';
import { RoutingPolicy } from './policy.js';
import { planResync } from './resync.js';
import type { BranchRouting, Route } from './route.js';

const CHAIN: readonly Route[] = [
  { name: 'catalogue', tables: ['public.product', 'public.price'], from: ['hq'], to: ['store'] },
  { name: 'sales', tables: ['sales.*'], from: ['store'], to: ['hq'] },
  { name: 'customers', tables: ['public.customer'], from: ['hq', 'store'], to: ['hq'] },
  { name: 'own-customers', tables: ['public.customer'], from: ['hq', 'store'], to: ['store'], filter: 'store_id = branch.store_id' },
];

function branches(n: number): Map<string, BranchRouting> {
  const m = new Map<string, BranchRouting>([['hq', { groups: ['hq'], attributes: {} }]]);
  for (let i = 1; i <= n; i++) m.set(`s${i}`, { groups: ['store'], attributes: { store_id: String(i) } });
  return m;
}

let seq = 0;
function change(origin: string, table: string, op: Change['op'], row: Record<string, string | null> | null, old?: Record<string, string | null>): Change {
  seq++;
  return {
    table,
    op,
    pk: { id: String(row?.id ?? old?.id ?? '1') },
    row,
    ...(old ? { old } : {}),
    hlc: '0000000000000001',
    vv: { [origin]: seq },
    origin,
    seq,
    tx: String(seq),
  };
}

type Held = Map<string, Record<string, string>>;

/**
 * One tenant's customers, written one change at a time (each reaching everyone before the
 * next): the full-mesh truth, what each branch holds, and the compacted state a snapshot reads.
 */
class Simulation {
  readonly truth: Held = new Map();
  readonly state = new Map<string, Change>();
  readonly held: Map<string, Held>;

  constructor(ids: readonly string[]) {
    this.held = new Map(ids.map((b) => [b, new Map()]));
  }

  /** Writes (or, with `store` undefined, deletes) customer `key` at `origin` and delivers it as `p` says. */
  step(p: RoutingPolicy, origin: string, key: string, store: number | undefined, n: number): void {
    const prev = this.truth.get(key);
    let c: Change;
    if (store === undefined) {
      if (!prev) return;
      c = change(origin, 'public.customer', 'delete', null, prev);
      this.truth.delete(key);
    } else {
      const row = { id: key, store_id: String(store), n: String(n) };
      const old = prev ? Object.fromEntries(Object.entries(prev).filter(([k, v]) => row[k as keyof typeof row] !== v)) : undefined;
      c = change(origin, 'public.customer', prev ? 'update' : 'insert', row, old);
      this.truth.set(key, row);
    }
    this.state.set(key, c.op === 'update' ? { ...c, op: 'insert' } : c);
    // The origin holds what it wrote (until the hub evicts it).
    const now = this.truth.get(key);
    if (now) this.mine(origin).set(key, now);
    else this.mine(origin).delete(key);
    for (const [b, d] of p.receivers(c)) {
      if (d === 'evict' || c.op === 'delete') this.mine(b).delete(key);
      else this.mine(b).set(key, c.row as Record<string, string>);
    }
  }

  mine(branch: string): Held {
    return this.held.get(branch) as Held;
  }

  /** hq holds every customer, a store exactly those of its store_id. */
  expectSubsets(all: ReadonlyMap<string, BranchRouting>): void {
    for (const [b, routing] of all) {
      const expected = [...this.truth].filter(([, row]) => b === 'hq' || row.store_id === routing.attributes.store_id);
      expect(new Map(this.mine(b))).toEqual(new Map(expected));
    }
  }
}

describe('RoutingPolicy', () => {
  const policy = RoutingPolicy.of(CHAIN, branches(3)) as RoutingPolicy;

  it('is absent for a tenant without routes, so nothing is evaluated', () => {
    expect(RoutingPolicy.of([], branches(3))).toBeNull();
  });

  it('delivers schema changes to every branch, in snapshots too, whatever the routes', () => {
    const c = schemaChange({ version: 1, sql: 'ALTER TABLE public.sale ADD COLUMN x int', description: null }, 1);
    expect([...policy.receivers(c).keys()].sort()).toEqual([...branches(3).keys()].sort());
    expect(policy.decide('s1', c)).toBe('deliver');
    expect(policy.holds('s2', c)).toBe(true);
  });

  it('lets each group send only its tables', () => {
    expect(policy.maySend('hq', 'public.product')).toBe(true);
    expect(policy.maySend('s1', 'public.product')).toBe(false);
    expect(policy.maySend('s1', 'sales.receipt')).toBe(true);
    expect(policy.maySend('hq', 'sales.receipt')).toBe(false);
    expect(policy.maySend('s1', 'public.unrouted')).toBe(false);
    expect(policy.sendTables('s2')).toEqual(['public.customer', 'sales.*']);
    expect(policy.sendTables('hq')).toEqual(['public.customer', 'public.price', 'public.product']);
  });

  it('sends the catalogue to every store and a sale to hq only', () => {
    expect([...policy.receivers(change('hq', 'public.product', 'insert', { id: '1' })).keys()].sort()).toEqual(['s1', 's2', 's3']);
    expect([...policy.receivers(change('s2', 'sales.receipt', 'insert', { id: '1' }))]).toEqual([['hq', 'deliver']]);
  });

  it('sends a customer to hq and to its own store, not to the others nor back to its origin', () => {
    const c = change('s2', 'public.customer', 'insert', { id: '7', store_id: '2' });
    expect(Object.fromEntries(policy.receivers(c))).toEqual({ hq: 'deliver' });
    const fromHq = change('hq', 'public.customer', 'insert', { id: '8', store_id: '3' });
    expect(Object.fromEntries(policy.receivers(fromHq))).toEqual({ s3: 'deliver' });
    expect(policy.decide('s1', fromHq)).toBe('skip');
  });

  it('evicts a row from its own writer when the write hands it to another store', () => {
    const handOver = change('s1', 'public.customer', 'update', { id: '7', store_id: '2' }, { store_id: '1' });
    expect(Object.fromEntries(policy.receivers(handOver))).toEqual({ hq: 'deliver', s1: 'evict', s2: 'deliver' });
    // A store keeps its own sales: no route sends sales to stores, so nothing is evicted.
    expect(policy.decide('s1', change('s1', 'sales.receipt', 'insert', { id: '1' }))).toBe('skip');
  });

  it('evicts a row from the store it left and sends it whole to the store it joined', () => {
    const move = change('hq', 'public.customer', 'update', { id: '7', store_id: '3', name: 'Ada' }, { store_id: '2' });
    expect(Object.fromEntries(policy.receivers(move))).toEqual({ s2: 'evict', s3: 'deliver' });
    expect(policy.decide('s1', move)).toBe('skip');
  });

  it('sends a delete to the branches that held the row', () => {
    const del = change('hq', 'public.customer', 'delete', null, { id: '7', store_id: '1' });
    expect(Object.fromEntries(policy.receivers(del))).toEqual({ s1: 'deliver' });
    // Without the old row (an older agent), every receiver of the table may hold it.
    const blind = change('hq', 'public.customer', 'delete', null);
    expect([...policy.receivers(blind).keys()].sort()).toEqual(['s1', 's2', 's3']);
  });

  it('compares numbers by value when looking receivers up ("02" is store 2)', () => {
    const c = change('hq', 'public.customer', 'insert', { id: '9', store_id: '02' });
    expect(Object.fromEntries(policy.receivers(c))).toEqual({ s2: 'deliver' });
  });

  it('evaluates only the candidates the attribute index yields', () => {
    // 300 stores: a customer of store 17 written at hq is decided for store 17 and for hq (its
    // writer, which may have to let it go), not for 300 stores.
    const big = RoutingPolicy.of(CHAIN, branches(300)) as RoutingPolicy;
    let calls = 0;
    // Counts the per-branch decisions receivers() makes (a private method, spied on by name).
    const spied = big as unknown as { decideWith: (...args: unknown[]) => unknown };
    const decide = spied.decideWith.bind(big);
    spied.decideWith = (...args) => {
      calls++;
      return decide(...args);
    };
    const c = change('hq', 'public.customer', 'insert', { id: '1', store_id: '17' });
    expect(Object.fromEntries(big.receivers(c))).toEqual({ s17: 'deliver' });
    expect(calls).toBe(2);
  });

  it('holds in a snapshot exactly the versions a branch would have received', () => {
    const v = change('hq', 'public.customer', 'update', { id: '1', store_id: '2' }, { store_id: '1' });
    expect(policy.holds('s2', v)).toBe(true);
    expect(policy.holds('s1', v)).toBe(false);
    expect(policy.holds('hq', change('s1', 'public.customer', 'insert', { id: '1', store_id: '1' }))).toBe(true);
    const tomb = change('hq', 'public.customer', 'delete', null, { id: '1', store_id: '1' });
    expect(policy.holds('s1', tomb)).toBe(true);
    expect(policy.holds('s2', tomb)).toBe(false);
  });

  // Sequential histories (each write made after the previous one reached everyone): every
  // branch ends holding exactly the rows its routes select from the full-mesh result.
  it('leaves each branch with exactly the rows its routes select', () => {
    const stores = 4;
    const all = branches(stores);
    const ids = [...all.keys()];
    const p = RoutingPolicy.of(CHAIN, all) as RoutingPolicy;
    const step = fc.record({
      origin: fc.constantFrom(...ids),
      key: fc.integer({ min: 1, max: 5 }),
      store: fc.integer({ min: 0, max: stores + 1 }),
      kind: fc.constantFrom('write', 'delete'),
    });
    fc.assert(
      fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
        const sim = new Simulation(ids);
        steps.forEach((s, n) => sim.step(p, s.origin, String(s.key), s.kind === 'delete' ? undefined : s.store, n));
        sim.expectSubsets(all);
      }),
      { numRuns: 300 },
    );
  });

  it('a resync from full mesh to routes evicts what a store no longer receives and keeps what it wrote', () => {
    const resync = planResync('s1', null, policy, branches(3));
    const otherSale = change('s2', 'sales.receipt', 'insert', { id: 'x' });
    const ownSale = change('s1', 'sales.receipt', 'insert', { id: 'y' });
    const ownCustomer = change('s1', 'public.customer', 'insert', { id: '1', store_id: '1' });
    const givenAway = change('s1', 'public.customer', 'insert', { id: '2', store_id: '2' });
    expect(resync.evicts([otherSale], false)).toBe(true);
    expect(resync.evicts([ownSale], false)).toBe(false);
    expect(resync.holds(ownCustomer)).toBe(true);
    expect(resync.evicts([givenAway], false)).toBe(true);
    // Routing unchanged: only rows changed after the cursor may be stale here.
    const same = planResync('s1', { routes: CHAIN, groups: ['store'], attributes: { store_id: '1' } }, policy, branches(3));
    expect(same.evicts([givenAway], false)).toBe(false);
    expect(same.evicts([givenAway], true)).toBe(true);
  });

  // The same, with stores changing their store_id now and then: each change is followed by the
  // resync a reconnect runs (snapshot of the compacted state under the new attributes, evictions
  // of what the store held under the old ones).
  it('leaves each branch with exactly its rows across attribute changes, through resyncs', () => {
    const stores = 3;
    const step = fc.oneof(
      fc.record({ kind: fc.constant('write' as const), origin: fc.constantFrom('hq', 's1', 's2', 's3'), key: fc.integer({ min: 1, max: 5 }), store: fc.integer({ min: 1, max: stores }) }),
      fc.record({ kind: fc.constant('delete' as const), origin: fc.constantFrom('hq', 's1', 's2', 's3'), key: fc.integer({ min: 1, max: 5 }) }),
      fc.record({ kind: fc.constant('reassign' as const), store: fc.constantFrom('s1', 's2', 's3'), to: fc.integer({ min: 1, max: stores + 1 }) }),
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 50 }), (steps) => {
        let all = branches(stores);
        let p = RoutingPolicy.of(CHAIN, all) as RoutingPolicy;
        const sim = new Simulation([...all.keys()]);
        steps.forEach((s, n) => {
          if (s.kind !== 'reassign') {
            sim.step(p, s.origin, String(s.key), s.kind === 'delete' ? undefined : s.store, n);
            return;
          }
          const before = all.get(s.store) as BranchRouting;
          all = new Map(all).set(s.store, { groups: ['store'], attributes: { store_id: String(s.to) } });
          p = RoutingPolicy.of(CHAIN, all) as RoutingPolicy;
          const resync = planResync(s.store, { routes: CHAIN, ...before }, p, all);
          const mine = sim.mine(s.store);
          for (const [key, v] of sim.state) {
            if (resync.holds(v)) {
              if (v.row) mine.set(key, v.row as Record<string, string>);
              else mine.delete(key);
            } else if (resync.evicts([v], false)) mine.delete(key);
          }
        });
        sim.expectSubsets(all);
      }),
      { numRuns: 300 },
    );
  });
});
