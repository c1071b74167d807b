import { describe, expect, it } from 'vitest';
import { addDecimals, impliedColumns, joinColumns, valueOf, type Cell, type CounterState } from './merge.js';

const LWW = { name: 'last-write-wins' } as const;
const cell = (v: string, hlc: string, origin: string, n: number): Cell => [v, hlc.padStart(16, '0'), origin, n, origin];

describe('joinColumns', () => {
  it('keeps both of two concurrent edits of different columns (phone at one store, e-mail at another)', () => {
    const base = { phone: cell('1', '1', 'hq', 1), email: cell('a@x', '1', 'hq', 1) };
    const s1 = { ...base, phone: cell('2', '5', 's1', 1) };
    const s2 = { ...base, email: cell('b@x', '6', 's2', 1) };
    const j = joinColumns(s1, s2, LWW, { hq: 1, s1: 1 }, { hq: 1, s2: 1 });
    expect(j.cols).toEqual({ phone: s1.phone, email: s2.email });
    expect(j.conflicted).toEqual([]);
    expect(j.merged).toEqual(['email']);
  });

  it('names a column both wrote concurrently as conflicted, the later write standing', () => {
    const s1 = { phone: cell('2', '5', 's1', 1) };
    const s2 = { phone: cell('3', '6', 's2', 1) };
    const j = joinColumns(s1, s2, LWW, { s1: 1 }, { s2: 1 });
    expect(j.cols.phone).toEqual(s2.phone);
    expect(j.conflicted).toEqual(['phone']);
  });

  it('adds up concurrent decrements of a counter', () => {
    const b = cell('10', '1', 'hq', 1);
    const s1: CounterState = { b, d: { s1: ['-1', 1, b[1], 'hq'] } };
    const s2: CounterState = { b, d: { s2: ['-1', 1, b[1], 'hq'], hq: ['5', 2, b[1], 'hq'] } };
    const j = joinColumns({ stock: s1 }, { stock: s2 }, LWW, { hq: 1, s1: 1 }, { hq: 2, s2: 1 });
    expect(valueOf(j.cols.stock as CounterState)).toBe('13');
    expect(j.merged).toEqual(['stock']);
  });

  it('is idempotent and commutative', () => {
    const a = { x: cell('1', '2', 'a', 1), y: cell('2', '1', 'b', 1) };
    const b = { x: cell('3', '1', 'b', 2), y: cell('4', '3', 'a', 2) };
    expect(joinColumns(a, a, LWW, {}, {}).cols).toEqual(a);
    expect(joinColumns(a, b, LWW, {}, {}).cols).toEqual(joinColumns(b, a, LWW, {}, {}).cols);
  });
});

describe('addDecimals', () => {
  it('adds integers and numerics exactly, keeping the widest scale', () => {
    expect(addDecimals('10', ['-1', '-1'])).toBe('8');
    expect(addDecimals('0.10', ['0.2'])).toBe('0.30');
    expect(addDecimals('-1.5', ['1.25'])).toBe('-0.25');
    expect(addDecimals('9007199254740993', ['1'])).toBe('9007199254740994');
    expect(addDecimals(null, [])).toBeNull();
    expect(() => addDecimals('abc', [])).toThrow(/not a number/);
  });
});

describe('impliedColumns', () => {
  it('stamps the columns an update changed with the change itself, and every column of an insert', () => {
    const v = { vv: { s1: 3 }, hlc: '0000000000000009', origin: 's1', deleted: false };
    expect(impliedColumns({ op: 'update', row: { id: '1', a: 'x', b: 'y' }, old: { a: 'w' } }, v, new Set(), ['id'])).toEqual({
      id: ['1', v.hlc, 's1', 3, 's1'],
      a: ['x', v.hlc, 's1', 3, 's1'],
    });
    expect(Object.keys(impliedColumns({ op: 'insert', row: { id: '1', a: 'x', n: '4' } }, v, new Set(['n']), ['id']))).toEqual(['id', 'a', 'n']);
  });
});
