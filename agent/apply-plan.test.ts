import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { runsOf, segmentsOf, type Write } from './apply-plan.js';

describe('segmentsOf', () => {
  it('cuts where a row repeats, and only there', () => {
    expect(segmentsOf([])).toEqual([]);
    expect(segmentsOf(['a', 'b', 'c'])).toEqual([{ start: 0, length: 3 }]);
    expect(segmentsOf(['a', 'b', 'a', 'c', 'b', 'b'])).toEqual([
      { start: 0, length: 2 },
      { start: 2, length: 3 },
      { start: 5, length: 1 },
    ]);
  });

  it('covers every position once, in order, with no row twice in a segment', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom('a', 'b', 'c', 'd', 'e'), { maxLength: 40 }), (ids) => {
        const segs = segmentsOf(ids);
        expect(segs.flatMap((s) => Array.from({ length: s.length }, (_, i) => s.start + i))).toEqual(ids.map((_, i) => i));
        for (const s of segs) {
          const part = ids.slice(s.start, s.start + s.length);
          expect(new Set(part).size).toBe(part.length);
        }
        // Maximal: each segment after the first starts with a row its predecessor holds.
        segs.slice(1).forEach((s, k) => {
          const prev = segs[k] as { start: number; length: number };
          expect(ids.slice(prev.start, prev.start + prev.length)).toContain(ids[s.start]);
        });
      }),
    );
  });
});

describe('runsOf', () => {
  const w = (table: string, kind: Write['kind'], columns: string[], index: number): Write => ({ table, kind, columns, index });

  it('merges consecutive writes of the same table, kind and columns, keeping their order', () => {
    expect(
      runsOf([
        w('t', 'insert', ['id', 'v'], 0),
        w('t', 'insert', ['id', 'v'], 1),
        w('u', 'insert', ['id'], 2),
        w('t', 'insert', ['id', 'v'], 3),
        w('t', 'insert', ['id'], 4),
        w('t', 'update', ['v'], 5),
        w('t', 'update', ['v'], 7),
        w('t', 'delete', [], 8),
      ]),
    ).toEqual([
      { table: 't', kind: 'insert', columns: ['id', 'v'], indices: [0, 1] },
      { table: 'u', kind: 'insert', columns: ['id'], indices: [2] },
      { table: 't', kind: 'insert', columns: ['id', 'v'], indices: [3] },
      { table: 't', kind: 'insert', columns: ['id'], indices: [4] },
      { table: 't', kind: 'update', columns: ['v'], indices: [5, 7] },
      { table: 't', kind: 'delete', columns: [], indices: [8] },
    ]);
  });
});
