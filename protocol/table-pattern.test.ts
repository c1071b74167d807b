import { describe, expect, it } from 'vitest';
import { anyTableMatcher, tableMatcher } from './table-pattern.js';

describe('table patterns', () => {
  it('matches a name exactly and `*` as any run of characters', () => {
    expect(tableMatcher('public.sale')('public.sale')).toBe(true);
    expect(tableMatcher('public.sale')('public.sales')).toBe(false);
    expect(tableMatcher('sales.*')('sales.receipt')).toBe(true);
    expect(tableMatcher('sales.*')('salesxreceipt')).toBe(false);
    expect(tableMatcher('*.price')('public.price')).toBe(true);
  });

  it('reads every other character literally', () => {
    expect(tableMatcher('a+b.*')('a+b.x')).toBe(true);
    expect(tableMatcher('a+b.*')('aab.x')).toBe(false);
  });

  it('matches any of several patterns', () => {
    const m = anyTableMatcher(['public.product', 'sales.*']);
    expect(['public.product', 'sales.x', 'public.customer'].map(m)).toEqual([true, true, false]);
  });
});
