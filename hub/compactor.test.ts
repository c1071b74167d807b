import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { vv, type Change } from '../protocol/index.js';
import { fcParams } from '../protocol/testing/fc.js';
import { foldRef, foldVersion, type VersionRef } from './compactor.js';
import { change } from './testing/harness.js';

const branches = ['a', 'b', 'c'];

/** A history of writes to one row: each write increments its writer's counter over some earlier version. */
const historyArb = fc
  .array(fc.record({ writer: fc.constantFrom(...branches), base: fc.nat(), hlc: fc.nat({ max: 1000 }) }), { minLength: 1, maxLength: 12 })
  .map((steps) => {
    const versions: Change[] = [];
    steps.forEach((s, i) => {
      const base = i === 0 ? {} : (versions[s.base % versions.length] as Change).vv;
      const next = vv.increment(base, s.writer);
      versions.push(change(s.writer, i + 1, { pk: { id: '1' }, vv: next, hlc: s.hlc.toString(16).padStart(16, '0') }));
    });
    return versions;
  });

function fold(changes: readonly Change[]): Change[] {
  return changes.reduce<Change[]>((kept, c) => foldVersion(kept, c), []);
}

describe('compacted state: maximal versions', () => {
  it('keeps only versions no other version dominates', () => {
    fc.assert(
      fc.property(historyArb, (history) => {
        const kept = fold(history);
        for (const k of kept) for (const other of history) expect(vv.compare(k.vv, other.vv)).not.toBe('before');
        for (const k of kept) for (const j of kept) if (k !== j) expect(vv.compare(k.vv, j.vv)).toBe('concurrent');
      }),
      fcParams({ numRuns: 300 }),
    );
  });

  it('is the same whatever order the log is folded in', () => {
    fc.assert(
      fc.property(historyArb.chain((h) => fc.tuple(fc.constant(h), fc.shuffledSubarray(h, { minLength: h.length, maxLength: h.length }))), ([history, shuffled]) => {
        expect(fold(shuffled)).toEqual(fold(history));
      }),
      fcParams({ numRuns: 300 }),
    );
  });

  it('drops an older version and keeps both of two concurrent ones', () => {
    const v1 = change('a', 1, { vv: { a: 1 } });
    const v2 = change('a', 2, { vv: { a: 2 } });
    const w = change('b', 1, { vv: { a: 1, b: 1 } });
    expect(fold([v1, v2]).map((c) => c.seq)).toEqual([2]);
    expect(fold([v1, v2, w])).toHaveLength(2);
    expect(fold([v2, v1])).toEqual(fold([v1, v2]));
    expect(fold([v1])[0]).not.toHaveProperty('tx_end');
  });

  it('folds references to versions (as the compactor does) to the same versions as whole changes', () => {
    const ref = (c: Change): VersionRef => ({ vv: c.vv, hlc: c.hlc, origin: c.origin, seq: c.seq, ref: { p: c.seq } });
    fc.assert(
      fc.property(historyArb.chain((h) => fc.tuple(fc.constant(h), fc.shuffledSubarray(h, { minLength: h.length, maxLength: h.length }))), ([history, shuffled]) => {
        const byRefs = shuffled.reduce<VersionRef[]>((kept, c) => foldRef(kept, ref(c)), []);
        const bySeq = history.reduce<VersionRef[]>((kept, c) => foldRef(kept, ref(c)), []);
        // Order-independent too, and the same set as folding whole changes up to which of two
        // identical versions (same vector, clock and origin) is kept.
        expect(byRefs).toEqual(bySeq);
        const key = (v: { vv: Change['vv']; hlc: string; origin: string }) => `${JSON.stringify(vv.normalize(v.vv))} ${v.hlc} ${v.origin}`;
        expect(byRefs.map(key).sort()).toEqual(fold(history).map(key).sort());
      }),
      fcParams({ numRuns: 300 }),
    );
  });
});
