import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { beats, resolve, strategyFor, type Strategy, type Version } from './conflict.js';
import { encodeHlc } from './hlc.js';
import type { VersionVector } from './messages.js';
import { fcParams } from './testing/fc.js';

const LWW: Strategy = { name: 'last-write-wins' };

function v(origin: string, wall: number, vv: VersionVector, deleted = false): Version {
  return { origin, hlc: encodeHlc({ wall, logical: 0 }), vv, deleted };
}

describe('resolve', () => {
  it('applies a change to a row it has never seen', () => {
    const incoming = v('a', 10, { a: 1 });
    expect(resolve(null, incoming, LWW)).toEqual({ action: 'apply', version: incoming });
  });

  it('applies a change that has seen everything the local version has', () => {
    const incoming = v('b', 5, { a: 1, b: 1 });
    // Even with an older HLC and a losing branch id: causality beats the clock.
    expect(resolve(v('a', 10, { a: 1 }), incoming, LWW)).toEqual({ action: 'apply', version: incoming });
  });

  it('skips a change the local version has already seen (stale)', () => {
    expect(resolve(v('b', 20, { a: 1, b: 1 }), v('a', 30, { a: 1 }), LWW)).toEqual({ action: 'skip', reason: 'stale' });
  });

  it('skips the same change delivered again (duplicate)', () => {
    const same = v('a', 10, { a: 1 });
    expect(resolve(same, { ...same }, LWW)).toEqual({ action: 'skip', reason: 'duplicate' });
    // Sparse and explicit-zero vectors are the same version.
    expect(resolve(v('a', 10, { a: 1, b: 0 }), v('a', 10, { a: 1 }), LWW)).toEqual({
      action: 'skip',
      reason: 'duplicate',
    });
  });

  describe('last-write-wins', () => {
    it('lets the concurrent write with the higher HLC win, and merges the vectors', () => {
      const local = v('a', 10, { a: 1 });
      const incoming = v('b', 20, { b: 1 });
      expect(resolve(local, incoming, LWW)).toEqual({
        action: 'conflict',
        winner: 'incoming',
        version: { vv: { a: 1, b: 1 }, hlc: incoming.hlc, origin: 'b', deleted: false },
      });
      expect(resolve(incoming, local, LWW)).toEqual({
        action: 'conflict',
        winner: 'local',
        version: { vv: { a: 1, b: 1 }, hlc: incoming.hlc, origin: 'b', deleted: false },
      });
    });

    it('breaks an HLC tie by the higher branch id', () => {
      const a = v('a', 10, { a: 1 });
      const b = v('b', 10, { b: 1 });
      expect(resolve(a, b, LWW)).toMatchObject({ action: 'conflict', winner: 'incoming', version: { origin: 'b' } });
      expect(resolve(b, a, LWW)).toMatchObject({ action: 'conflict', winner: 'local', version: { origin: 'b' } });
    });

    it('compares the logical part of the HLC too', () => {
      const early = { ...v('z', 10, { z: 1 }), hlc: encodeHlc({ wall: 10, logical: 1 }) };
      const late = { ...v('a', 10, { a: 1 }), hlc: encodeHlc({ wall: 10, logical: 2 }) };
      expect(resolve(early, late, LWW)).toMatchObject({ winner: 'incoming' });
    });
  });

  describe('branch-priority', () => {
    const priority: Strategy = { name: 'branch-priority', priority: ['hq', 'store-1'] };

    it('lets the branch listed first win, whatever the clocks say', () => {
      const hq = v('hq', 10, { hq: 1 });
      const store = v('store-1', 99, { 'store-1': 1 });
      expect(resolve(hq, store, priority)).toMatchObject({ winner: 'local', version: { origin: 'hq' } });
      expect(resolve(store, hq, priority)).toMatchObject({ winner: 'incoming', version: { origin: 'hq' } });
    });

    it('ranks unlisted branches below every listed one, and between themselves by HLC', () => {
      const listed = v('store-1', 10, { 'store-1': 1 });
      const unlisted = v('zz', 99, { zz: 1 });
      expect(resolve(listed, unlisted, priority)).toMatchObject({ winner: 'local' });
      const older = v('x', 10, { x: 1 });
      const newer = v('y', 20, { y: 1 });
      expect(resolve(older, newer, priority)).toMatchObject({ winner: 'incoming' });
      expect(resolve(newer, older, priority)).toMatchObject({ winner: 'local' });
    });

    it('still applies a causally later write from a lower-ranked branch', () => {
      // store-1 saw hq's write and changed the row again: not a conflict.
      expect(resolve(v('hq', 10, { hq: 1 }), v('store-1', 20, { hq: 1, 'store-1': 1 }), priority)).toMatchObject({
        action: 'apply',
      });
    });

    it("ranks a write by the best branch in its history, so an edit of hq's row keeps hq's rank", () => {
      // store-2 (unlisted) edited the row after seeing hq's write; store-1 wrote concurrently.
      const editOfHq = v('store-2', 20, { hq: 1, 'store-2': 1 });
      const store1 = v('store-1', 30, { 'store-1': 1 });
      expect(resolve(store1, editOfHq, priority)).toMatchObject({ winner: 'incoming', version: { origin: 'store-2' } });
      expect(resolve(editOfHq, store1, priority)).toMatchObject({ winner: 'local', version: { origin: 'store-2' } });
    });
  });

  describe('tombstones', () => {
    const tombstone = v('a', 20, { a: 2 }, true);

    it('a stale update does not resurrect a deleted row', () => {
      expect(resolve(tombstone, v('a', 10, { a: 1 }), LWW)).toEqual({ action: 'skip', reason: 'stale' });
    });

    it('a concurrent update that loses leaves the row deleted', () => {
      expect(resolve(tombstone, v('b', 15, { a: 1, b: 1 }), LWW)).toEqual({
        action: 'conflict',
        winner: 'local',
        version: { vv: { a: 2, b: 1 }, hlc: tombstone.hlc, origin: 'a', deleted: true },
      });
    });

    it('a concurrent update that wins resurrects the row', () => {
      const update = v('b', 25, { a: 1, b: 1 });
      expect(resolve(tombstone, update, LWW)).toEqual({
        action: 'conflict',
        winner: 'incoming',
        version: { vv: { a: 2, b: 1 }, hlc: update.hlc, origin: 'b', deleted: false },
      });
    });

    it('an update made after seeing the delete re-creates the row', () => {
      expect(resolve(tombstone, v('b', 5, { a: 2, b: 1 }), LWW)).toMatchObject({ action: 'apply' });
    });

    it('a concurrent delete that wins deletes the row', () => {
      const row = v('a', 10, { a: 1 });
      expect(resolve(row, v('b', 30, { b: 1 }, true), LWW)).toMatchObject({
        action: 'conflict',
        winner: 'incoming',
        version: { deleted: true },
      });
    });
  });
});

describe('strategyFor', () => {
  const policy = { conflict_strategy: 'branch-priority' as const, branch_priority: ['hq'] };

  it("takes the tenant's strategy and priority list", () => {
    expect(strategyFor(policy)).toEqual({ name: 'branch-priority', priority: ['hq'] });
    expect(strategyFor({ ...policy, conflict_strategy: 'last-write-wins' })).toEqual(LWW);
  });

  it('lets a per-table override win over the tenant default', () => {
    expect(strategyFor(policy, 'last-write-wins')).toEqual(LWW);
    expect(strategyFor({ ...policy, conflict_strategy: 'last-write-wins' }, 'branch-priority')).toEqual({
      name: 'branch-priority',
      priority: ['hq'],
    });
  });
});

// Small pools, so ties on HLC, origin and rank are frequent.
const branches = ['a', 'b', 'c', 'constructor'];
const versionArb: fc.Arbitrary<Version> = fc.record({
  origin: fc.constantFrom(...branches),
  hlc: fc.record({ wall: fc.integer({ min: 0, max: 3 }), logical: fc.integer({ min: 0, max: 2 }) }).map(encodeHlc),
  vv: fc.dictionary(fc.constantFrom(...branches), fc.integer({ min: 1, max: 2 }), { maxKeys: 4, noNullPrototype: true }),
  deleted: fc.boolean(),
});
const strategyArb: fc.Arbitrary<Strategy> = fc.oneof(
  fc.constant(LWW),
  fc.shuffledSubarray(branches).map((priority) => ({ name: 'branch-priority' as const, priority })),
);

/** The same version as far as any replica can tell. */
const same = (a: Version, b: Version): boolean =>
  a.origin === b.origin &&
  a.hlc === b.hlc &&
  a.deleted === b.deleted &&
  JSON.stringify(Object.entries(a.vv).filter(([, n]) => n > 0).sort()) ===
    JSON.stringify(Object.entries(b.vv).filter(([, n]) => n > 0).sort());

describe('beats is a strict total order, for both strategies', () => {
  it('is irreflexive', () => {
    fc.assert(
      fc.property(versionArb, strategyArb, (a, s) => {
        expect(beats(a, a, s)).toBe(false);
        expect(beats(a, { ...a, vv: { ...a.vv } }, s)).toBe(false);
      }),
      fcParams(),
    );
  });

  it('is antisymmetric and total: of two different versions exactly one beats the other', () => {
    fc.assert(
      fc.property(versionArb, versionArb, strategyArb, (a, b, s) => {
        const ab = beats(a, b, s);
        const ba = beats(b, a, s);
        expect(ab && ba).toBe(false);
        expect(ab || ba).toBe(!same(a, b));
      }),
      fcParams(),
    );
  });

  it('is transitive', () => {
    fc.assert(
      fc.property(versionArb, versionArb, versionArb, strategyArb, (a, b, c, s) => {
        if (beats(a, b, s) && beats(b, c, s)) expect(beats(a, c, s)).toBe(true);
      }),
      fcParams(),
    );
  });
});
