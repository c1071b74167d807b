/**
 * Convergence of column-level tables (protocol/merge.ts), the companion of convergence.test.ts:
 * replicas insert, update single columns, add to a counter and delete rows concurrently, and
 * receive each other's changes in any order, late and more than once. Every replica must end
 * with the same row version and column state; every column must hold the greatest write of
 * that column (so no write is lost unless a concurrent write of the same column beat it); and
 * every counter must equal its base plus every increment made on that base.
 *
 * Replay a failure as convergence.test.ts says (FC_SEED, FC_PATH).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { resolve, type Strategy, type Version } from './conflict.js';
import { decodeHlc, encodeHlc, HybridClock } from './hlc.js';
import { cellBeats, isCounter, joinColumns, valueOf, type Cell, type ColumnState, type Contribution, type CounterState } from './merge.js';
import { increment } from './version-vector.js';
import { idArb } from './testing/arbitraries.js';
import { fcParams } from './testing/fc.js';

const KEYS = ['k1', 'k2'] as const;
const PLAIN = ['a', 'b'] as const;
const EPOCH = 1_700_000_000_000;

interface Stored {
  readonly version: Version;
  readonly cols: ColumnState;
}

interface Change {
  readonly key: string;
  readonly version: Version;
  readonly cols: ColumnState;
}

type Op = { readonly op: 'set'; readonly col: number } | { readonly op: 'add'; readonly delta: number } | { readonly op: 'delete' };

type Step =
  | { readonly kind: 'write'; readonly replica: number; readonly key: number; readonly w: Op }
  | { readonly kind: 'deliver'; readonly pick: number }
  | { readonly kind: 'redeliver'; readonly pick: number }
  | { readonly kind: 'tick'; readonly ms: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant('set' as const), col: fc.nat(PLAIN.length - 1) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('add' as const), delta: fc.integer({ min: -5, max: 5 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('delete' as const) }) },
);

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('write' as const), replica: fc.nat(), key: fc.nat(KEYS.length - 1), w: opArb }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('deliver' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('redeliver' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 2000 }) }) },
);

interface Scenario {
  readonly ids: readonly string[];
  readonly steps: readonly Step[];
  readonly drain: readonly number[];
}

const scenarioArb: fc.Arbitrary<Scenario> = fc.uniqueArray(idArb, { minLength: 2, maxLength: 5 }).chain((ids) =>
  fc.record({ ids: fc.constant(ids), steps: fc.array(stepArb, { maxLength: 80 }), drain: fc.array(fc.nat(), { maxLength: 300 }) }),
);

/** Everything written, for the expectations: every cell made, and every increment with the base it added to. */
interface History {
  readonly cells: { key: string; col: string; cell: Cell }[];
  readonly adds: { key: string; base: Cell; delta: number }[];
}

class Replica {
  readonly rows = new Map<string, Stored>();
  private seq = 0;
  readonly clock: HybridClock;

  constructor(
    readonly id: string,
    physicalNow: () => number,
    private readonly strategy: Strategy,
    private readonly history: History,
  ) {
    this.clock = new HybridClock({ physicalNow });
  }

  /** `best` of a new cell overwriting `prev` (branch-priority: the better of this branch and the previous writers). */
  private best(prev: Cell | undefined): string {
    if (this.strategy.name !== 'branch-priority' || prev === undefined) return this.id;
    const rank = (b: string): number => {
      const i = this.strategy.name === 'branch-priority' ? this.strategy.priority.indexOf(b) : -1;
      return i === -1 ? Number.MAX_SAFE_INTEGER : i;
    };
    return rank(prev[4]) < rank(this.id) ? prev[4] : this.id;
  }

  /** A local write, as the capture trigger records it: an insert when the row is absent here. */
  write(key: string, w: Op): Change {
    const local = this.rows.get(key);
    const vv = increment(local?.version.vv ?? {}, this.id);
    const n = vv[this.id] as number;
    const hlc = encodeHlc(this.clock.now());
    const alive = local !== undefined && !local.version.deleted;
    const cols: Record<string, Cell | CounterState> = { ...(local?.cols ?? {}) };
    const cell = (col: string, value: string): Cell => {
      const prev = cols[col];
      const c: Cell = [value, hlc, this.id, n, this.best(prev === undefined ? undefined : isCounter(prev) ? prev.b : prev)];
      this.history.cells.push({ key, col, cell: c });
      return c;
    };
    let deleted = false;
    if (w.op === 'delete' && alive) deleted = true;
    else if (!alive) {
      // Insert: every column set, the counter at a new base.
      for (const col of PLAIN) cols[col] = cell(col, `${this.id}#${++this.seq}`);
      cols.c = { b: cell('c', String(this.seq * 10)), d: {} };
    } else if (w.op === 'set') {
      const col = PLAIN[w.col] as string;
      cols[col] = cell(col, `${this.id}#${++this.seq}`);
    } else if (w.op === 'add') {
      const c = cols.c as CounterState;
      const mine = c.d[this.id];
      const prior = mine !== undefined && mine[2] === c.b[1] && mine[3] === c.b[2] ? Number(mine[0]) : 0;
      const contribution: Contribution = [String(prior + w.delta), n, c.b[1], c.b[2]];
      cols.c = { b: c.b, d: { ...c.d, [this.id]: contribution } };
      this.history.adds.push({ key, base: c.b, delta: w.delta });
    }
    const version: Version = { vv, hlc, origin: this.id, deleted };
    this.rows.set(key, { version, cols });
    return { key, version, cols };
  }

  /** A remote change, as the apply plan handles it: existence by `resolve`, columns by join. */
  receive(change: Change): void {
    this.clock.receive(decodeHlc(change.version.hlc));
    const local = this.rows.get(change.key);
    const decision = resolve(local?.version ?? null, change.version, this.strategy);
    if (decision.action === 'skip') return;
    const cols = local ? joinColumns(local.cols, change.cols, this.strategy, local.version.vv, change.version.vv).cols : change.cols;
    this.rows.set(change.key, { version: decision.version, cols });
  }
}

function run(scenario: Scenario, strategy: Strategy): { replicas: Replica[]; history: History } {
  let now = EPOCH;
  const history: History = { cells: [], adds: [] };
  const replicas = scenario.ids.map((id) => new Replica(id, () => now, strategy, history));
  const n = replicas.length;
  const inFlight: { to: number; change: Change }[] = [];
  const delivered: { to: number; change: Change }[] = [];
  const deliver = (pick: number): void => {
    if (inFlight.length === 0) return;
    const [m] = inFlight.splice(pick % inFlight.length, 1);
    if (!m) return;
    replicas[m.to]?.receive(m.change);
    delivered.push(m);
  };
  for (const step of scenario.steps) {
    if (step.kind === 'write') {
      const from = step.replica % n;
      const change = (replicas[from] as Replica).write(KEYS[step.key] as string, step.w);
      for (let to = 0; to < n; to++) if (to !== from) inFlight.push({ to, change });
    } else if (step.kind === 'deliver') deliver(step.pick);
    else if (step.kind === 'redeliver') {
      const m = delivered[step.pick % Math.max(1, delivered.length)];
      if (m) inFlight.push(m);
    } else now += step.ms;
  }
  for (const pick of scenario.drain) deliver(pick);
  while (inFlight.length > 0) deliver(0);
  return { replicas, history };
}

function check(scenario: Scenario, strategy: Strategy): void {
  const { replicas, history } = run(scenario, strategy);
  const [first, ...others] = replicas as [Replica, ...Replica[]];
  for (const key of KEYS) {
    const ref = first.rows.get(key);
    for (const r of others) expect(r.rows.get(key), `replica ${r.id} vs ${first.id}, row ${key}`).toEqual(ref);
    if (ref === undefined) continue;
    // Each column holds the greatest of all writes of that column.
    for (const col of [...PLAIN, 'c']) {
      let best: Cell | undefined;
      for (const h of history.cells) if (h.key === key && h.col === col && (best === undefined || cellBeats(h.cell, best, strategy))) best = h.cell;
      const got = ref.cols[col];
      expect(got === undefined ? undefined : isCounter(got) ? got.b : got, `column ${col} of ${key}`).toEqual(best);
    }
    // The counter is its base plus every increment made on that base, at whichever replica.
    const c = ref.cols.c as CounterState;
    const added = history.adds.filter((a) => a.key === key && a.base[1] === c.b[1] && a.base[2] === c.b[2]).reduce((s, a) => s + a.delta, 0);
    expect(Number(valueOf(c)), `counter of ${key}`).toBe(Number(c.b[0]) + added);
  }
}

describe('column-level rows converge, keep every column write and count every increment', () => {
  it('with last-write-wins', () => {
    fc.assert(
      fc.property(scenarioArb, (s) => check(s, { name: 'last-write-wins' })),
      fcParams(),
    );
  });

  it('with branch-priority', () => {
    fc.assert(
      fc.property(
        scenarioArb.chain((s) => fc.tuple(fc.constant(s), fc.shuffledSubarray([...s.ids]).map((priority) => ({ name: 'branch-priority' as const, priority })))),
        ([s, strategy]) => check(s, strategy),
      ),
      fcParams(),
    );
  });
});
