import { describe, expect, it } from 'vitest';
import type { Version } from '../../protocol/conflict.js';
import type { Change } from '../../protocol/messages.js';
import type { TableInfo } from '../catalog.js';
import { chunkLength, nextBudget } from './chunks.js';
import { planChunk, rowIdentity, rowsToRead, type Item, type PlanContext, type RowRead } from './plan.js';
import { isChangeError, retryDelayMs, retryReason } from './retry.js';

const kv: TableInfo = {
  name: 'public.kv',
  columns: [
    { name: 'k', type: 'integer' },
    { name: 'v', type: 'integer' },
    { name: 'note', type: 'text' },
  ],
  pk: ['k'],
  pins: [],
  strategy: undefined,
  relkind: 'r', merge: 'row', additive: [],
};
const ctx: PlanContext = {
  policy: { conflict_strategy: 'last-write-wins', branch_priority: [] },
  tables: new Map([[kv.name, kv]]),
  branchId: 'here',
  maxSkewMs: 300_000,
  now: 1_700_000_000_000,
};
const hlc = (ms: number, n = 0): string => ((BigInt(ms) << 16n) | BigInt(n)).toString(16).padStart(16, '0');

let seq = 0;
function item(offset: number, c: Partial<Change> & { k: string }): Item {
  const { k, ...rest } = c;
  seq++;
  return {
    offset,
    change: { table: kv.name, op: 'update', pk: { k }, row: { k, v: String(seq) }, hlc: hlc(ctx.now - 1000 + seq), vv: { there: seq }, origin: 'there', seq, tx: String(seq), ...rest },
  };
}

function absent(k: string): RowRead {
  return { pk: { k }, pkText: `{"k": "${k}"}`, cur: null, version: null, stored: null, cols: null };
}

function present(k: string, values: Record<string, string | null>, version: Version | null): RowRead {
  return {
    pk: { k },
    pkText: `{"k": "${k}"}`,
    cur: { k, ...values },
    version,
    stored: version === null ? null : { hlc: '1', vv: version.vv },
    cols: null,
  };
}

const reads = (...rs: RowRead[]): Map<string, RowRead> => new Map(rs.map((r) => [rowIdentity(kv.name, [r.pk.k as string]), r]));

describe('planChunk', () => {
  it('writes a row changed by many source transactions once, with its final values and the last version', () => {
    const items = [1, 2, 3, 4, 5].map((o) => item(o, { k: '1', row: { k: '1', v: String(o * 10) }, vv: { there: o } }));
    const plan = planChunk({ items, cursor: 0, reads: reads(present('1', { v: '0', note: 'n' }, { vv: {}, hlc: hlc(1), origin: 'x', deleted: false })), ctx });
    expect(plan.rows).toHaveLength(1);
    expect(plan.rows[0]).toMatchObject({ write: 'update', columns: ['v'], values: ['50'], version: { vv: { there: 5 } } });
    expect(plan).toMatchObject({ applied: 5, skipped: 0, top: 5 });
  });

  it('an eviction drops the row and forgets its version, and nothing of a row never here', () => {
    // The copy is older than (or the same as) the version the eviction is for.
    const local = { vv: { there: 1 }, hlc: hlc(ctx.now - 5000), origin: 'there', deleted: false };
    const evict = item(1, { k: '1', op: 'delete', row: null, evict: true, vv: { there: 2 } });
    const plan = planChunk({ items: [evict, item(2, { k: '2', op: 'delete', row: null, evict: true })], cursor: 0, reads: reads(present('1', { v: '5', note: null }, local), absent('2')), ctx });
    expect(plan.rows.map((r) => [r.key, r.write, r.version])).toEqual([[['1'], 'delete', null]]);
    expect(plan.conflicts).toEqual([]);
    const same = planChunk({ items: [item(1, { k: '1', op: 'delete', row: null, evict: true, vv: { there: 1 }, hlc: local.hlc })], cursor: 0, reads: reads(present('1', { v: '5', note: null }, local)), ctx });
    expect(same.rows.map((r) => [r.write, r.version])).toEqual([['delete', null]]);
    // Moved back in later in the same chunk: the row arrives whole, as new.
    const back = item(3, { k: '1', op: 'update', row: { k: '1', v: '7', note: 'x' }, vv: { there: 3 } });
    const again = planChunk({ items: [evict, back], cursor: 0, reads: reads(present('1', { v: '5', note: null }, local)), ctx });
    expect(again.rows.map((r) => [r.write, r.values, r.version?.vv])).toEqual([['replace', ['1', '7', 'x'], { there: 3 }]]);
  });

  it('keeps a copy newer than the version an eviction is for: that eviction is stale', () => {
    // Dominating: this branch's version already includes the evicted one.
    const after = { vv: { there: 5, here: 1 }, hlc: hlc(ctx.now - 100), origin: 'here', deleted: false };
    const stale = planChunk({ items: [item(1, { k: '1', op: 'delete', row: null, evict: true, vv: { there: 5 } })], cursor: 0, reads: reads(present('1', { v: '5', note: null }, after)), ctx });
    expect(stale.rows).toEqual([]);
    expect(stale.skipped).toBe(1);
    // Concurrent, and the local write wins (later clock): kept too.
    const concurrent = { vv: { here: 9 }, hlc: hlc(ctx.now), origin: 'here', deleted: false };
    const lost = planChunk({ items: [item(1, { k: '1', op: 'delete', row: null, evict: true, vv: { there: 1 }, hlc: hlc(ctx.now - 50) })], cursor: 0, reads: reads(present('1', { v: '5', note: null }, concurrent)), ctx });
    expect(lost.rows).toEqual([]);
    // Concurrent, and the evicted version wins: dropped.
    const won = planChunk({ items: [item(1, { k: '1', op: 'delete', row: null, evict: true, vv: { there: 1 }, hlc: hlc(ctx.now + 50) })], cursor: 0, reads: reads(present('1', { v: '5', note: null }, concurrent)), ctx });
    expect(won.rows.map((r) => [r.write, r.version])).toEqual([['delete', null]]);
  });

  it('skips entries at or below the cursor and stale changes, and moves the cursor to the last offset', () => {
    const items = [item(3, { k: '1' }), item(4, { k: '1', vv: { there: 9 } }), item(5, { k: '1', vv: { there: 2 } })];
    const plan = planChunk({ items, cursor: 3, reads: reads(absent('1')), ctx });
    expect(plan).toMatchObject({ applied: 1, skipped: 2, top: 5 });
    expect(plan.rows[0]).toMatchObject({ write: 'insert', version: { vv: { there: 9 } } });
  });

  it('an insert then delete of a row never seen here writes only the tombstone version', () => {
    const items = [item(1, { k: '7', op: 'insert', vv: { there: 1 } }), item(2, { k: '7', op: 'delete', row: null, vv: { there: 2 } })];
    const plan = planChunk({ items, cursor: 0, reads: reads(absent('7')), ctx });
    expect(plan.rows[0]).toMatchObject({ write: 'none', version: { deleted: true, vv: { there: 2 } } });
  });

  it('a delete then insert of an existing row replaces it, so columns the insert does not carry take their defaults', () => {
    const local = { vv: { there: 1 }, hlc: hlc(1), origin: 'there', deleted: false };
    const items = [item(1, { k: '1', op: 'delete', row: null, vv: { there: 2 } }), item(2, { k: '1', op: 'insert', row: { k: '1', v: '5' }, vv: { there: 3 } })];
    const plan = planChunk({ items, cursor: 0, reads: reads(present('1', { v: '1', note: 'old' }, local)), ctx });
    expect(plan.rows[0]).toMatchObject({ write: 'replace', columns: ['k', 'v'], values: ['1', '5'] });
  });

  it('records a conflict against the row as it stood at that point, and reports it when the local write wins', () => {
    const local = { vv: { here: 1 }, hlc: hlc(ctx.now + 10_000), origin: 'here', deleted: false };
    const items = [item(1, { k: '1', row: { k: '1', v: '9' }, vv: { there: 1 } })];
    const plan = planChunk({ items, cursor: 0, reads: reads(present('1', { v: '1', note: 'mine' }, local)), ctx });
    expect(plan.conflicts).toEqual([
      expect.objectContaining({ winner: 'local', report: true, localRow: { k: '1', v: '1', note: 'mine' }, incomingRow: { k: '1', v: '9' } }),
    ]);
    // The local row stays; only its version learns the incoming vector.
    expect(plan.rows[0]).toMatchObject({ write: 'none', version: { origin: 'here', vv: { here: 1, there: 1 } } });
    expect(plan.applied).toBe(0);
  });

  it('dead-letters changes for unknown tables, keys not in canonical form and forced ones, and plans the rest', () => {
    const items = [
      item(1, { k: '1', table: 'public.secret' }),
      item(2, { k: '01' }),
      item(3, { k: '2' }),
      item(4, { k: '3' }),
    ];
    const r = reads({ ...absent('1'), pk: { k: '1' } }, absent('2'), absent('3'));
    r.set(rowIdentity(kv.name, ['01']), { ...absent('1') });
    const plan = planChunk({ items, cursor: 0, reads: r, ctx, forced: new Map([[3, { reason: '23505: taken', sqlstate: '23505' }]]) });
    expect(plan.deadLetters.map((d) => [d.item.offset, d.sqlstate])).toEqual([
      [1, null],
      [2, null],
      [4, '23505'],
    ]);
    expect(plan.deadLetters[1]?.reason).toContain('canonical');
    expect(plan.rows.map((x) => x.key)).toEqual([['2']]);
    expect(plan.top).toBe(4);
  });

  it('raises the floor to the highest timestamp within the skew limit and counts the others', () => {
    const items = [item(1, { k: '1', hlc: hlc(ctx.now + 1000) }), item(2, { k: '2', hlc: hlc(ctx.now + 3_600_000) })];
    const plan = planChunk({ items, cursor: 0, reads: reads(absent('1'), absent('2')), ctx });
    expect(plan.skewed).toBe(1);
    expect(plan.floor).toBe(BigInt(ctx.now + 1000) << 16n);
  });

  it('snapshot chunks (no cursor) compare no offsets', () => {
    const plan = planChunk({ items: [{ ...item(0, { k: '1' }), offset: null }], cursor: null, reads: reads(absent('1')), ctx });
    expect(plan).toMatchObject({ applied: 1, skipped: 0 });
  });

  it('reads each row once, and none for changes that are dead-lettered before reading', () => {
    const items = [item(1, { k: '1' }), item(2, { k: '1' }), item(3, { k: '2', table: 'public.nope' }), item(4, { k: '3' })];
    expect([...rowsToRead(items, ctx.tables, new Map([[3, { reason: 'x', sqlstate: null }]])).values()].map((x) => x.key)).toEqual([['1']]);
  });
});

describe('chunkLength', () => {
  const tx = (txid: string, keys: string[]): Item[] => keys.map((k) => ({ ...item(0, { k }), change: { ...item(0, { k }).change, tx: txid } }));

  it('keeps source transactions whole and stops at the row budget', () => {
    const items = [...tx('a', ['1', '2']), ...tx('b', ['3', '4']), ...tx('c', ['5'])];
    expect(chunkLength(items, 0, 3)).toBe(2);
    expect(chunkLength(items, 0, 4)).toBe(4);
    expect(chunkLength(items, 2, 10)).toBe(3);
  });

  it('counts a row once however often it changes: 500 transactions on one hot row are one chunk', () => {
    const items = Array.from({ length: 500 }, (_, i) => tx(String(i), ['1'])).flat();
    expect(chunkLength(items, 0, 10)).toBe(500);
  });

  it('a source transaction larger than the budget is a chunk of its own', () => {
    const items = [...tx('a', ['1', '2', '3', '4']), ...tx('b', ['5'])];
    expect(chunkLength(items, 0, 2)).toBe(4);
  });

  it('the budget halves under contention, down to a floor, and grows back', () => {
    expect(nextBudget(1000, true, 1000)).toBe(500);
    expect(nextBudget(20, true, 1000)).toBe(16);
    expect(nextBudget(500, false, 1000)).toBe(625);
    expect(nextBudget(900, false, 1000)).toBe(1000);
  });
});

describe('retry', () => {
  const pgError = (code: string): Error => Object.assign(new Error(code), { code });

  it('classifies why a transaction runs again, and which errors belong to a change', () => {
    expect(['HS001', '55P03', '40P01', '40001', '23505'].map((c) => retryReason(pgError(c)))).toEqual(['race', 'lock_timeout', 'deadlock', 'serialization', undefined]);
    expect(isChangeError(pgError('23505'))).toBe(true);
    expect(isChangeError(pgError('22P02'))).toBe(true);
    expect(isChangeError(pgError('42501'))).toBe(false);
    expect(isChangeError(pgError('08006'))).toBe(false);
  });

  it('retries a first race at once, waits with jitter after a lock timeout, never above a second', () => {
    expect(retryDelayMs('race', 1, () => 0.99)).toBe(0);
    expect(retryDelayMs('lock_timeout', 1, () => 0.5)).toBe(5);
    expect(retryDelayMs('lock_timeout', 30, () => 0.999)).toBeLessThan(1000);
  });
});
