import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { VersionVector } from './messages.js';
import { compare, increment, merge, normalize, type Ordering } from './version-vector.js';
import { fcParams } from './testing/fc.js';

// A small pool of branches, so random vectors overlap often. `constructor` is a valid branch id
// (a DNS-1123 label) and also a property every plain object inherits.
const branchArb = fc.constantFrom('a', 'b', 'c', 'constructor');
/** Vectors as found in the wild: sparse, sometimes with explicit zeros. */
const vvArb: fc.Arbitrary<VersionVector> = fc.dictionary(branchArb, fc.integer({ min: 0, max: 3 }), {
  maxKeys: 4,
  noNullPrototype: true,
});

const MIRROR: Record<Ordering, Ordering> = { before: 'after', after: 'before', equal: 'equal', concurrent: 'concurrent' };

/** The definition, written out over the union of keys, to check `compare` against. */
function referenceCompare(a: VersionVector, b: VersionVector): Ordering {
  const get = (v: VersionVector, k: string): number => (Object.hasOwn(v, k) ? (v[k] ?? 0) : 0);
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  const aAhead = [...keys].some((k) => get(a, k) > get(b, k));
  const bAhead = [...keys].some((k) => get(b, k) > get(a, k));
  return aAhead ? (bAhead ? 'concurrent' : 'after') : bAhead ? 'before' : 'equal';
}

const dominatesOrEquals = (a: VersionVector, b: VersionVector): boolean => ['after', 'equal'].includes(compare(a, b));

describe('version vectors', () => {
  it('compare follows the pointwise definition, missing entries counting as zero', () => {
    fc.assert(
      fc.property(vvArb, vvArb, (a, b) => {
        expect(compare(a, b)).toBe(referenceCompare(a, b));
      }),
      fcParams(),
    );
  });

  it('every vector equals itself, and equal means the same normalized vector', () => {
    fc.assert(
      fc.property(vvArb, vvArb, (a, b) => {
        expect(compare(a, a)).toBe('equal');
        expect(compare(a, b) === 'equal').toBe(JSON.stringify(normalize(a)) === JSON.stringify(normalize(b)));
      }),
      fcParams(),
    );
  });

  it('compare(a, b) is the mirror of compare(b, a) (antisymmetry)', () => {
    fc.assert(
      fc.property(vvArb, vvArb, (a, b) => {
        expect(compare(b, a)).toBe(MIRROR[compare(a, b)]);
      }),
      fcParams(),
    );
  });

  it('before is transitive, on random triples and on built chains', () => {
    fc.assert(
      fc.property(vvArb, vvArb, vvArb, branchArb, branchArb, (a, b, c, k1, k2) => {
        if (compare(a, b) === 'before' && compare(b, c) === 'before') expect(compare(a, c)).toBe('before');
        if (compare(a, b) === 'equal' && compare(b, c) === 'equal') expect(compare(a, c)).toBe('equal');
        const b2 = increment(merge(a, b), k1);
        const c2 = increment(merge(b2, c), k2);
        expect(compare(a, b2)).toBe('before');
        expect(compare(b2, c2)).toBe('before');
        expect(compare(a, c2)).toBe('before');
      }),
      fcParams(),
    );
  });

  it('merge is commutative, associative and idempotent', () => {
    fc.assert(
      fc.property(vvArb, vvArb, vvArb, (a, b, c) => {
        expect(normalize(merge(a, b))).toEqual(normalize(merge(b, a)));
        expect(normalize(merge(merge(a, b), c))).toEqual(normalize(merge(a, merge(b, c))));
        expect(normalize(merge(a, a))).toEqual(normalize(a));
      }),
      fcParams(),
    );
  });

  it('merge(a, b) dominates or equals both, and is the least such vector', () => {
    fc.assert(
      fc.property(vvArb, vvArb, vvArb, (a, b, c) => {
        const m = merge(a, b);
        expect(dominatesOrEquals(m, a)).toBe(true);
        expect(dominatesOrEquals(m, b)).toBe(true);
        if (dominatesOrEquals(c, a) && dominatesOrEquals(c, b)) expect(dominatesOrEquals(c, m)).toBe(true);
      }),
      fcParams(),
    );
  });

  it('increment makes a vector strictly after the one it came from, without changing it', () => {
    fc.assert(
      fc.property(vvArb, branchArb, (a, k) => {
        const copy = structuredClone(a);
        const next = increment(a, k);
        expect(compare(next, a)).toBe('after');
        expect(compare(a, next)).toBe('before');
        expect(next[k]).toBe((Object.hasOwn(a, k) ? (a[k] ?? 0) : 0) + 1);
        expect(a).toEqual(copy);
      }),
      fcParams(),
    );
  });

  it('treats a sparse vector and one with explicit zeros as equal; normalize drops the zeros', () => {
    fc.assert(
      fc.property(vvArb, branchArb, (a, k) => {
        const withZero = Object.hasOwn(a, k) ? a : { ...a, [k]: 0 };
        expect(compare(a, withZero)).toBe('equal');
        expect(compare(withZero, a)).toBe('equal');
        expect(Object.values(normalize(withZero)).every((v) => v > 0)).toBe(true);
        expect(normalize(withZero)).toEqual(normalize(a));
      }),
      fcParams(),
    );
  });

  it('normalize sorts keys, so equal vectors have the same JSON text', () => {
    expect(JSON.stringify(normalize({ c: 1, a: 2, b: 0 }))).toBe('{"a":2,"c":1}');
  });

  it('handles concrete cases', () => {
    expect(compare({}, {})).toBe('equal');
    expect(compare({ a: 1 }, {})).toBe('after');
    expect(compare({}, { a: 1 })).toBe('before');
    expect(compare({ a: 1 }, { b: 1 })).toBe('concurrent');
    expect(compare({ a: 2, b: 1 }, { a: 1, b: 1 })).toBe('after');
    expect(compare({ a: 0 }, {})).toBe('equal');
    expect(merge({ a: 1, b: 3 }, { a: 2, c: 1 })).toEqual({ a: 2, b: 3, c: 1 });
    expect(increment({}, 'constructor')).toEqual({ constructor: 1 });
    expect(merge({}, { constructor: 2 })).toEqual({ constructor: 2 });
    expect(compare({ constructor: 1 }, {})).toBe('after');
  });
});
