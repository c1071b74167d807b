import { describe, expect, it } from 'vitest';
import type { Conflict } from '../protocol/index.js';
import { AuditBudget, MAX_CONFLICT_ROWS_BYTES, trimConflict } from './conflict-trim.js';

const base: Conflict = {
  table: 'public.doc',
  pk: { id: '1', part: 'a' },
  strategy: 'last-write-wins',
  winner: { origin: 'a', hlc: '0000018c00000001', vv: { a: 2 }, deleted: false },
  loser: { origin: 'b', hlc: '0000018c00000000', vv: { b: 1 }, deleted: false },
  winner_row: { id: '1', part: 'a', body: 'short' },
  loser_row: { id: '1', part: 'a', body: 'shorter' },
  detected_at: '2026-12-04T00:00:00Z',
};

describe('trimConflict', () => {
  it('keeps a report whose rows fit as it is', () => {
    expect(trimConflict(base)).toEqual({ conflict: base, cut: false });
    expect(trimConflict({ ...base, loser_row: null })).toEqual({ conflict: { ...base, loser_row: null }, cut: false });
  });

  it('cuts long values, saying how long they were, when the rows are over the limit', () => {
    const big = { ...base, winner_row: { ...base.winner_row, body: 'x'.repeat(MAX_CONFLICT_ROWS_BYTES) }, loser_row: { ...base.loser_row, n: 7, list: ['y'.repeat(300)] } };
    const { conflict, cut } = trimConflict(big);
    expect(cut).toBe(true);
    expect(conflict.winner_row).toEqual({ id: '1', part: 'a', body: `${'x'.repeat(256)}… [${MAX_CONFLICT_ROWS_BYTES + 2} bytes, cut by the hub]` });
    expect(conflict.loser_row?.n).toBe(7);
    expect(conflict.loser_row?.list).toMatch(/^\["y{254}… \[304 bytes, cut by the hub\]$/);
    expect(conflict.winner).toEqual(base.winner);
  });

  it('keeps only the key columns when cutting values is not enough', () => {
    const wide = Object.fromEntries(Array.from({ length: 400 }, (_, i) => [`c${i}`, 'v'.repeat(200)]));
    const { conflict, cut } = trimConflict({ ...base, winner_row: { ...base.winner_row, ...wide }, loser_row: null });
    expect(cut).toBe(true);
    expect(conflict.winner_row).toEqual({ id: '1', part: 'a' });
    expect(conflict.loser_row).toBeNull();
  });
});

describe('AuditBudget', () => {
  it('allows a burst, then a steady rate, per tenant', () => {
    let now = 0;
    const b = new AuditBudget(2, 3, () => now);
    expect([1, 2, 3, 4].map(() => b.take('t'))).toEqual([true, true, true, false]);
    // Another tenant has its own budget.
    expect(b.take('u')).toBe(true);
    now = 500;
    expect([b.take('t'), b.take('t')]).toEqual([true, false]);
    now = 60_000;
    expect([1, 2, 3, 4].map(() => b.take('t'))).toEqual([true, true, true, false]);
  });
});
