import { describe, expect, it } from 'vitest';
import { mergeDisagreements, validateTableMerges } from './table-merge.js';

describe('table merge declarations', () => {
  it('normalises: counters sorted and unique, merge column implied by counters', () => {
    expect(validateTableMerges([{ name: 'public.product', additive: ['stock', 'reserved', 'stock'] }, { name: 'public.customer', merge: 'column' }])).toEqual([
      { name: 'public.product', merge: 'column', additive: ['reserved', 'stock'] },
      { name: 'public.customer', merge: 'column', additive: [] },
    ]);
  });

  it('refuses what cannot be meant, naming the entry', () => {
    expect(() => validateTableMerges({})).toThrow(/must be a list/);
    expect(() => validateTableMerges([{ name: 'product' }])).toThrow(/tables\[0\]\.name must be schema\.table/);
    expect(() => validateTableMerges([{ name: 'public.a', merge: 'row', additive: ['n'] }])).toThrow(/tables\[0\]: additive columns need merge: column/);
    expect(() => validateTableMerges([{ name: 'public.a', merge: 'cell' }])).toThrow(/merge must be row or column/);
    expect(() => validateTableMerges([{ name: 'public.a' }, { name: 'public.a' }])).toThrow(/tables\[1\]: public\.a is declared twice/);
    expect(() => validateTableMerges([{ name: 'public.a', additive: [1] }])).toThrow(/additive must be a list of column names/);
    expect(() => validateTableMerges([{ name: 'public.a', extra: true }])).toThrow(/unknown key "extra"/);
  });

  it('finds where a branch merges otherwise than the tenant; an undeclared table merges by row', () => {
    const tenant = validateTableMerges([{ name: 'public.product', additive: ['stock'] }]);
    expect(mergeDisagreements([{ name: 'public.product', merge: 'column', additive: ['stock'] }, { name: 'public.sale', merge: 'row', additive: [] }], tenant)).toEqual([]);
    expect(mergeDisagreements([{ name: 'public.product', merge: 'row', additive: [] }], tenant)).toEqual([
      'public.product merges by row here, by column with counters stock for the tenant',
    ]);
    expect(mergeDisagreements([{ name: 'public.sale', merge: 'column', additive: [] }], tenant)).toEqual(['public.sale merges by column here, by row for the tenant']);
  });
});
