/**
 * Convergence: replicas that write the same rows concurrently and receive each other's changes
 * in any order, late, and more than once, end up holding exactly the same rows and versions.
 *
 * Each run is a random schedule of writes, deliveries, duplicate deliveries, clock jumps and
 * the passing of time, followed by delivery of everything still in flight. A replica applies
 * a change the way the agent does: `clock.receive`, then `resolve`, then act on the decision.
 *
 * A failure prints `{ seed, path }`; replay exactly that case with
 *   FC_SEED=<seed> FC_PATH="<path>" npx vitest run protocol/convergence.test.ts -t '<strategy>'
 * (see protocol/testing/fc.ts).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { beats, resolve, type Strategy, type Version } from './conflict.js';
import { decodeHlc, encodeHlc, HybridClock } from './hlc.js';
import type { Row } from './messages.js';
import { increment } from './version-vector.js';
import { idArb } from './testing/arbitraries.js';
import { fcParams } from './testing/fc.js';

const KEYS = ['k1', 'k2', 'k3'] as const;
const EPOCH = 1_700_000_000_000;
/** Physical clocks stay within this of true time, well inside the HLC's 5-minute forward-skew limit. */
const MAX_OFFSET_MS = 60_000;

interface Stored {
  readonly row: Row | null;
  readonly version: Version;
}

/** What travels: one write to one row. */
interface Change {
  readonly key: string;
  readonly row: Row | null;
  readonly version: Version;
}

type Step =
  | { readonly kind: 'write'; readonly replica: number; readonly key: number; readonly op: 'upsert' | 'delete' }
  | { readonly kind: 'deliver'; readonly pick: number }
  | { readonly kind: 'redeliver'; readonly pick: number }
  | { readonly kind: 'jump'; readonly replica: number; readonly offsetMs: number }
  | { readonly kind: 'tick'; readonly ms: number };

interface Scenario {
  readonly ids: readonly string[];
  readonly offsets: readonly number[];
  readonly steps: readonly Step[];
  /** Order in which whatever is still in flight at the end gets delivered. */
  readonly drain: readonly number[];
}

const offsetArb = fc.oneof(fc.constant(0), fc.integer({ min: -MAX_OFFSET_MS, max: MAX_OFFSET_MS }));

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('write' as const),
      replica: fc.nat(),
      key: fc.nat(KEYS.length - 1),
      op: fc.constantFrom('upsert' as const, 'upsert' as const, 'delete' as const),
    }),
  },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('deliver' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('redeliver' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('jump' as const), replica: fc.nat(), offsetMs: offsetArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 2000 }) }) },
);

const scenarioArb: fc.Arbitrary<Scenario> = fc
  .uniqueArray(idArb, { minLength: 3, maxLength: 6 })
  .chain((ids) =>
    fc.record({
      ids: fc.constant(ids),
      offsets: fc.array(offsetArb, { minLength: ids.length, maxLength: ids.length }),
      steps: fc.array(stepArb, { maxLength: 80 }),
      drain: fc.array(fc.nat(), { maxLength: 400 }),
    }),
  );

class Replica {
  readonly rows = new Map<string, Stored>();
  private seq = 0;
  readonly clock: HybridClock;

  constructor(
    readonly id: string,
    physicalNow: () => number,
  ) {
    this.clock = new HybridClock({ physicalNow });
  }

  /** A local write, as the capture trigger records it. */
  write(key: string, op: 'upsert' | 'delete'): Change {
    const local = this.rows.get(key);
    const version: Version = {
      vv: increment(local?.version.vv ?? {}, this.id),
      hlc: encodeHlc(this.clock.now()),
      origin: this.id,
      deleted: op === 'delete',
    };
    const row = op === 'delete' ? null : { id: key, value: `${this.id}#${++this.seq}` };
    this.rows.set(key, { row, version });
    return { key, row, version };
  }

  /** A remote change, as the apply engine handles it. */
  receive(change: Change, strategy: Strategy): void {
    this.clock.receive(decodeHlc(change.version.hlc));
    const local = this.rows.get(change.key);
    const decision = resolve(local?.version ?? null, change.version, strategy);
    switch (decision.action) {
      case 'apply':
        this.rows.set(change.key, { row: change.row, version: decision.version });
        break;
      case 'conflict':
        this.rows.set(change.key, {
          row: decision.winner === 'incoming' ? change.row : (local as Stored).row,
          version: decision.version,
        });
        break;
      case 'skip':
        break;
    }
  }
}

function run(scenario: Scenario, strategy: Strategy): { replicas: Replica[]; writes: Change[] } {
  let now = EPOCH;
  const offsets = [...scenario.offsets];
  const replicas = scenario.ids.map((id, i) => new Replica(id, () => now + (offsets[i] ?? 0)));
  const n = replicas.length;
  const inFlight: { to: number; change: Change }[] = [];
  const delivered: { to: number; change: Change }[] = [];
  const writes: Change[] = [];

  const deliver = (pick: number): void => {
    if (inFlight.length === 0) return;
    const [m] = inFlight.splice(pick % inFlight.length, 1);
    if (!m) return;
    replicas[m.to]?.receive(m.change, strategy);
    delivered.push(m);
  };

  for (const step of scenario.steps) {
    switch (step.kind) {
      case 'write': {
        const from = step.replica % n;
        const change = (replicas[from] as Replica).write(KEYS[step.key] as string, step.op);
        writes.push(change);
        for (let to = 0; to < n; to++) if (to !== from) inFlight.push({ to, change });
        break;
      }
      case 'deliver':
        deliver(step.pick);
        break;
      case 'redeliver': {
        const m = delivered[step.pick % Math.max(1, delivered.length)];
        if (m) inFlight.push(m);
        break;
      }
      case 'jump':
        offsets[step.replica % n] = step.offsetMs;
        break;
      case 'tick':
        now += step.ms;
        break;
    }
  }
  for (const pick of scenario.drain) deliver(pick);
  while (inFlight.length > 0) deliver(0);
  return { replicas, writes };
}

/** Every write to `key` that no other write to it beats: what every replica must hold. */
function expectedWinner(writes: readonly Change[], key: string, strategy: Strategy): Change | undefined {
  let best: Change | undefined;
  for (const w of writes) {
    if (w.key === key && (best === undefined || beats(w.version, best.version, strategy))) best = w;
  }
  return best;
}

function checkConvergence(scenario: Scenario, strategy: Strategy): void {
  const { replicas, writes } = run(scenario, strategy);
  const [first, ...others] = replicas as [Replica, ...Replica[]];
  for (const key of KEYS) {
    const reference = first.rows.get(key);
    for (const r of others) {
      expect(r.rows.get(key), `replica ${r.id} vs ${first.id}, row ${key}`).toEqual(reference);
    }
    // And what they agree on is the write the strategy prefers, over all writes to the row.
    const winner = expectedWinner(writes, key, strategy);
    expect(reference?.row, `row ${key}`).toEqual(winner?.row);
    expect(reference?.version.hlc).toBe(winner?.version.hlc);
    expect(reference?.version.origin).toBe(winner?.version.origin);
    expect(reference?.version.deleted).toBe(winner?.version.deleted);
  }
}

describe('replicas converge whatever the delivery order, duplicates, delays and clock skew', () => {
  it('with last-write-wins', () => {
    fc.assert(
      fc.property(scenarioArb, (scenario) => checkConvergence(scenario, { name: 'last-write-wins' })),
      fcParams(),
    );
  });

  it('with branch-priority (random priority lists, some branches unlisted)', () => {
    fc.assert(
      fc.property(
        scenarioArb.chain((s) =>
          fc.tuple(
            fc.constant(s),
            fc
              .shuffledSubarray([...s.ids, 'not-a-replica'])
              .map((priority) => ({ name: 'branch-priority' as const, priority })),
          ),
        ),
        ([scenario, strategy]) => checkConvergence(scenario, strategy),
      ),
      fcParams(),
    );
  });
});
