import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { resolve, strategyFor } from '../../protocol/conflict.js';
import { fcParams } from '../../protocol/testing/fc.js';
import type { Change } from '../../protocol/index.js';
import { RoutingPolicy } from './policy.js';
import { heldBefore, plainInsert, repairsFor, winnerOf } from './repair.js';
import type { BranchRouting, Route } from './route.js';

const ROUTES: Route[] = [
  { name: 'customers-to-hq', tables: ['public.customer'], from: ['hq', 'store'], to: ['hq'] },
  { name: 'own-customers', tables: ['public.customer'], from: ['hq', 'store'], to: ['store'], filter: 'store_id = branch.store_id' },
];
const BRANCHES = new Map<string, BranchRouting>([
  ['hq', { groups: ['hq'], attributes: {} }],
  ['s1', { groups: ['store'], attributes: { store_id: '1' } }],
  ['s2', { groups: ['store'], attributes: { store_id: '2' } }],
  ['s3', { groups: ['store'], attributes: { store_id: '3' } }],
]);
const policy = RoutingPolicy.of(ROUTES, BRANCHES) as RoutingPolicy;
const lww = strategyFor({ conflict_strategy: 'last-write-wins', branch_priority: [] });

const hlc = (ms: number): string => (BigInt(ms) << 16n).toString(16).padStart(16, '0');
/** A write of customer 7 by `origin`, at `ms`, over the version vector `vv`. */
function write(origin: string, ms: number, vv: Record<string, number>, row: Record<string, string>, old?: Record<string, string>): Change {
  return { table: 'public.customer', op: 'update', pk: { id: '7' }, row: { id: '7', ...row }, ...(old ? { old } : {}), hlc: hlc(ms), vv, origin, seq: vv[origin] as number, tx: `${origin}-${ms}` };
}
const repairs = (changes: Change[]) => {
  const winner = winnerOf(changes, lww) as Change;
  return repairsFor(policy, changes, winner, lww).repairs.map((r) => [r.branch, r.change.evict === true ? 'evict' : `${r.change.origin}@${r.change.seq}`]);
};

describe('route repair', () => {
  it('skips the replay of a new row inserted once and nothing else', () => {
    const insert = { ...write('hq', 10, { hq: 1 }, { store_id: '1', name: 'Ann' }), op: 'insert' as const };
    const update = write('hq', 20, { hq: 2 }, { store_id: '2', name: 'Ann' }, { store_id: '1' });
    expect(plainInsert([insert], [insert])).toBe(true);
    expect(plainInsert([insert, update], [update])).toBe(false);
    expect(plainInsert([update], [update])).toBe(false);
    expect(plainInsert([insert], [insert, update])).toBe(false);
  });

  it('repairs nothing when nothing raced: a move alone, an edit alone, one after the other', () => {
    const move = write('s1', 100, { s1: 1 }, { store_id: '2', name: 'Ann' }, { store_id: '1' });
    const edit = write('hq', 200, { s1: 1, hq: 1 }, { store_id: '2', name: 'Anne' }, { name: 'Ann' });
    expect(repairs([move])).toEqual([]);
    expect(repairs([move, edit])).toEqual([]);
  });

  it('takes the moved row from the store it moved to when an edit elsewhere, made before seeing the move, wins', () => {
    // s1 moves the customer to store 2; hq, not having seen that, edits the name later (it wins).
    const move = write('s1', 100, { s1: 1 }, { store_id: '2', name: 'Ann' }, { store_id: '1' });
    const edit = write('hq', 200, { hq: 1 }, { store_id: '1', name: 'Anne' }, { name: 'Ann' });
    // s2 got the moved row and nothing after it; s1 got the edit after its own move evicted it.
    expect(repairs([move, edit])).toEqual([['s2', 'evict']]);
    // In the other log order s1 got the edit first (it won over s1's own write), then the eviction of
    // its own move, which its newer copy beats (stale): nothing to send it either.
    expect(repairs([edit, move])).toEqual([['s2', 'evict']]);
  });

  it('gives the row back to a store whose own later edit won over a move it had not seen', () => {
    // hq moves the customer from store 1 to store 2; s1, offline, edits it later (it wins).
    const move = write('hq', 100, { hq: 1 }, { store_id: '2', name: 'Ann' }, { store_id: '1' });
    const edit = write('s1', 200, { s1: 1 }, { store_id: '1', name: 'Anne' }, { name: 'Ann' });
    // s1's copy beats the eviction of hq's move (stale at s1); s2 must lose the moved row.
    expect(repairs([move, edit])).toEqual([['s2', 'evict']]);
  });

  it('sends the winner to a store that should hold it but was evicted by a losing move', () => {
    // s3 moves the customer from store 1 to store 3 at 300, after hq's edit at 200 which keeps it at
    // store 1... but hq's clock ran ahead: its edit carries 400 and wins.
    const start = write('hq', 50, { hq: 1 }, { store_id: '1', name: 'Ann' });
    const move = write('s1', 300, { hq: 1, s1: 1 }, { store_id: '3', name: 'Ann' }, { store_id: '1' });
    const edit = write('hq', 400, { hq: 2 }, { store_id: '1', name: 'Anne' }, { name: 'Ann' });
    // s1: its own move evicted its copy, then the edit came back whole: it holds the winner.
    // s3: got the moved row, must lose it.
    expect(repairs([start, move, edit])).toEqual([['s3', 'evict']]);
    // With the edit first in the log, s1 held it, then its own move's eviction (of a version the
    // edit beats) was stale: still nothing for s1.
    expect(repairs([start, edit, move])).toEqual([['s3', 'evict']]);
  });

  it('knows what each branch holds from before a stretch: a race split over two passes is repaired too', () => {
    const move = write('s1', 100, { s1: 1 }, { store_id: '2', name: 'Ann' }, { store_id: '1' });
    const edit = write('hq', 200, { hq: 1 }, { store_id: '1', name: 'Anne' }, { name: 'Ann' });
    // First pass: only the move is in the log; it is the winner then, nothing to repair.
    expect(repairsFor(policy, [move], move, lww).repairs).toEqual([]);
    // Second pass: the edit wins. The move, still a version of the state (concurrent with the
    // edit), tells who holds it from before: store 2 (and hq), which the edit did not reach.
    const before = heldBefore(policy, [move, edit], [edit], lww);
    expect([...before].map(([b, c]) => [b, `${c.origin}@${c.seq}`]).sort()).toEqual([['hq', 's1@1'], ['s2', 's1@1']]);
    const second = repairsFor(policy, [edit], edit, lww, before);
    expect(second.repairs.map((r) => [r.branch, r.change.evict === true])).toEqual([['s2', true]]);
    // Without knowing that, store 2 would keep the moved row.
    expect(repairsFor(policy, [edit], edit, lww).repairs).toEqual([]);
  });

  it('sends the winner again to a store that received a losing version after being evicted', () => {
    // s2 takes the customer from store 1 (move to 2), while s1 edits it concurrently and loses.
    const move = write('s2', 300, { s2: 1 }, { store_id: '2', name: 'Ann' }, { store_id: '1' });
    const losing = write('s1', 200, { s1: 1 }, { store_id: '1', name: 'Anne' }, { name: 'Ann' });
    // hq holds the move (wins); s1 holds its own losing write: it must lose the row (not its subset
    // any more); s2 wrote the winner.
    expect(repairs([move, losing])).toEqual([['s1', 'evict']]);
  });
});

/**
 * Branches writing one row concurrently while it moves between stores, deliveries in any order
 * and interleaving, route repair passes at random points: once everything is delivered and a
 * last pass found nothing more, every branch holds the row's winner if its routes select it,
 * and nothing otherwise (docs/sync-semantics.md "Convergence within a subset").
 */
describe('route repair, property', () => {
  type Entry = { readonly change: Change; readonly target: string | null };
  const ids = [...BRANCHES.keys()];

  const version = (c: Change) => ({ vv: c.vv, hlc: c.hlc, origin: c.origin, deleted: c.op === 'delete' });
  /** What an agent keeps of `held` after applying `c` (agent/apply/plan.ts, written again here). */
  function apply(held: Change | null, c: Change): Change | null {
    if (c.evict === true) {
      if (held === null) return null;
      const d = resolve(version(held), version(c), lww);
      return (d.action === 'skip' && d.reason === 'stale') || (d.action === 'conflict' && d.winner === 'local') ? held : null;
    }
    if (held === null) return c;
    const d = resolve(version(held), version(c), lww);
    return d.action === 'apply' || (d.action === 'conflict' && d.winner === 'incoming') ? c : held;
  }

  const op = fc.oneof(
    fc.record({ kind: fc.constant('write' as const), branch: fc.constantFrom(...ids), store: fc.constantFrom('1', '2', '3'), rename: fc.boolean() }),
    fc.record({ kind: fc.constant('deliver' as const), branch: fc.constantFrom(...ids), count: fc.integer({ min: 1, max: 4 }) }),
    fc.constant({ kind: 'repair' as const }),
  );

  it('leaves every branch with the winner where its routes select the row, and nothing elsewhere', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const log: Entry[] = [];
        const cursor = new Map(ids.map((b) => [b, 0]));
        const held = new Map<string, Change | null>(ids.map((b) => [b, null]));
        const seqs = new Map(ids.map((b) => [b, 0]));
        let clock = 1000;
        let maximal: Change[] = [];
        let repaired = 0;
        const first: Change = { ...write('hq', clock++, { hq: 1 }, { store_id: '1', name: 'n0' }), op: 'insert' };
        seqs.set('hq', 1);
        held.set('hq', first);
        log.push({ change: first, target: null });
        maximal = [first];

        const deliverTo = (b: string, count: number) => {
          for (let i = 0; i < count && (cursor.get(b) as number) < log.length; i++) {
            const e = log[cursor.get(b) as number] as Entry;
            cursor.set(b, (cursor.get(b) as number) + 1);
            if (e.target !== null && e.target !== b) continue;
            const d = policy.decide(b, e.change);
            if (d === 'skip') continue;
            held.set(b, apply(held.get(b) ?? null, d === 'evict' && e.change.evict !== true ? { ...e.change, op: 'delete', row: null, evict: true } : e.change));
          }
        };
        const repairPass = () => {
          const stretch = log.slice(repaired).filter((e) => e.target === null).map((e) => e.change);
          repaired = log.length;
          if (stretch.length === 0) return 0;
          // As hub/route-repair.ts does: a new row's first insert alone is not replayed.
          if (plainInsert(stretch, maximal)) return 0;
          const winner = winnerOf(maximal, lww) as Change;
          const r = repairsFor(policy, stretch, winner, lww, heldBefore(policy, maximal, stretch, lww));
          for (const x of r.repairs) log.push({ change: x.change, target: x.branch });
          repaired = log.length;
          return r.repairs.length;
        };

        for (const o of ops) {
          if (o.kind === 'deliver') deliverTo(o.branch, o.count);
          else if (o.kind === 'repair') repairPass();
          else {
            const mine = held.get(o.branch) ?? null;
            // A store edits only a row it holds; hq may always write (it would re-create it).
            if (mine === null && o.branch !== 'hq') continue;
            const seq = (seqs.get(o.branch) as number) + 1;
            seqs.set(o.branch, seq);
            const base = mine?.row ?? { id: '7', store_id: '1', name: 'n0' };
            const row = { ...(base as Record<string, string>), store_id: o.store, ...(o.rename ? { name: `n${clock}` } : {}) };
            const old = Object.fromEntries(Object.entries(base as Record<string, string>).filter(([k, v]) => row[k as keyof typeof row] !== v));
            const vv = { ...(mine?.vv ?? {}), [o.branch]: seq };
            const c = write(o.branch, clock++, vv, row, old);
            held.set(o.branch, c);
            log.push({ change: c, target: null });
            // The compacted state: the maximal versions.
            maximal = [...maximal.filter((m) => resolve(version(m), version(c), lww).action !== 'apply'), c];
          }
        }
        // Everything delivered, then repair until a pass finds nothing (each pass's entries delivered).
        for (let round = 0; round < 6; round++) {
          for (const b of ids) deliverTo(b, Number.MAX_SAFE_INTEGER);
          if (repairPass() === 0) break;
        }
        for (const b of ids) deliverTo(b, Number.MAX_SAFE_INTEGER);
        expect(repairPass()).toBe(0);
        const winner = winnerOf(maximal, lww) as Change;
        for (const b of ids) {
          const copy = held.get(b) ?? null;
          const expected = policy.keeps(b, winner) ? `${winner.origin}@${winner.seq}` : null;
          expect([b, copy && `${copy.origin}@${copy.seq}`]).toEqual([b, expected]);
        }
      }),
      fcParams({ numRuns: 500 }),
    );
  });
});
