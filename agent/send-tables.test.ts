import { describe, expect, it } from 'vitest';
import type { Change } from '../protocol/index.js';
import { keepSendable, sendableTables } from './send-tables.js';

const c = (table: string, tx: string, seq: number, end = false): Change => ({
  table,
  op: 'insert',
  pk: { id: String(seq) },
  row: { id: String(seq) },
  hlc: '0000000000000001',
  vv: { b1: seq },
  origin: 'b1',
  seq,
  tx,
  ...(end ? { tx_end: true } : {}),
});

describe('sendableTables', () => {
  it('is absent without routes and matches names and patterns with them', () => {
    expect(sendableTables(undefined)).toBeNull();
    const may = sendableTables(['public.customer', 'sales.*']) as (t: string) => boolean;
    expect(may('public.customer')).toBe(true);
    expect(may('sales.receipt')).toBe(true);
    expect(may('public.product')).toBe(false);
    // "." is a dot, not any character.
    expect(may('salesXreceipt')).toBe(false);
    expect((sendableTables([]) as (t: string) => boolean)('public.customer')).toBe(false);
  });
});

describe('keepSendable', () => {
  it('drops the changes of other tables and ends a transaction on its last kept change', () => {
    const changes = [c('sales.receipt', '7', 1), c('public.product', '7', 2, true), c('public.product', '8', 3, true), c('sales.receipt', '9', 4)];
    const kept = keepSendable(changes, ['1', '2', '3', '4'], (t) => t.startsWith('sales.'));
    expect(kept.seqs).toEqual(['1', '4']);
    expect(kept.changes.map((x) => [x.seq, x.tx_end === true])).toEqual([
      [1, true],
      // Transaction 9 did not end in this batch: it still does not.
      [4, false],
    ]);
    expect(kept.dropped).toEqual([
      { seq: '2', table: 'public.product' },
      { seq: '3', table: 'public.product' },
    ]);
  });
});
