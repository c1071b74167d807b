import { describe, expect, it } from 'vitest';
import { pruneBound } from './retention.js';

const base = { compactedUpto: 100, prunedUpto: 0, head: 120, minCursor: 50 as number | null, maxEntries: 0, agedUpto: null as number | null };

describe('retention bound', () => {
  it('prunes below every cursor, never past compaction', () => {
    expect(pruneBound(base)).toBe(50);
    expect(pruneBound({ ...base, minCursor: 110 })).toBe(100);
    expect(pruneBound({ ...base, minCursor: null })).toBe(100);
  });

  it('lets maximum size and age prune compacted entries past a slow cursor', () => {
    expect(pruneBound({ ...base, minCursor: 10, maxEntries: 100 })).toBe(20);
    expect(pruneBound({ ...base, minCursor: 10, maxEntries: 5 })).toBe(100);
    expect(pruneBound({ ...base, minCursor: 10, agedUpto: 70 })).toBe(70);
    expect(pruneBound({ ...base, minCursor: 10, agedUpto: 200 })).toBe(100);
  });

  it('never moves back', () => {
    expect(pruneBound({ ...base, prunedUpto: 90 })).toBe(90);
  });
});
