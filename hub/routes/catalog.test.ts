import { describe, expect, it } from 'vitest';
import { columnKind, coveredTables, type KnownTable } from './catalog.js';
import { RouteError, validateRoutes, type Route } from './route.js';

const TABLES: KnownTable[] = [
  { name: 'public.customer', columns: [{ name: 'id', type: 'integer' }, { name: 'store_id', type: 'integer' }, { name: 'name', type: 'text' }, { name: 'vip', type: 'boolean' }] },
  { name: 'public.product', columns: [{ name: 'id', type: 'integer' }, { name: 'price', type: 'numeric(10,2)' }] },
  { name: 'sales.sale', columns: [{ name: 'id', type: 'uuid' }, { name: 'store_id', type: 'bigint' }, { name: 'at', type: 'timestamp with time zone' }] },
];
const schema = { attributes: new Set(['store_id', 'region']), tables: TABLES };

function route(tables: string[], filter: string): Route {
  return { name: 'r', tables, from: ['*'], to: ['store'], filter };
}
const refusal = (r: Route): string => {
  try {
    validateRoutes([r], schema);
  } catch (err) {
    if (err instanceof RouteError) return err.message;
    throw err;
  }
  return 'accepted';
};

describe('columnKind', () => {
  it('compares numbers as numbers, text as text, booleans as booleans and the rest unchecked', () => {
    for (const t of ['smallint', 'integer', 'bigint', 'numeric', 'numeric(10,2)', 'real', 'double precision']) expect(columnKind(t)).toBe('number');
    for (const t of ['text', 'character varying(20)', 'character varying', 'character(3)', 'uuid', 'name']) expect(columnKind(t)).toBe('text');
    expect(columnKind('boolean')).toBe('boolean');
    for (const t of ['timestamp with time zone', 'date', 'jsonb', 'integer[]', 'public.mood']) expect(columnKind(t)).toBe('other');
  });
});

describe('coveredTables', () => {
  it('lists the reported tables a route names or its patterns match', () => {
    expect(coveredTables(['public.customer'], TABLES).map((t) => t.name)).toEqual(['public.customer']);
    expect(coveredTables(['public.*'], TABLES).map((t) => t.name)).toEqual(['public.customer', 'public.product']);
    expect(coveredTables(['other.thing'], TABLES)).toEqual([]);
  });
});

describe('route filters against the reported tables', () => {
  it('accepts a filter every covered table can answer', () => {
    expect(refusal(route(['public.customer', 'sales.sale'], 'store_id = branch.store_id'))).toBe('accepted');
    expect(refusal(route(['public.customer'], "vip = true OR name IN ('a', 'b')"))).toBe('accepted');
    // Unchecked kinds take any literal.
    expect(refusal(route(['sales.sale'], "at > '2026-01-01'"))).toBe('accepted');
  });

  it('refuses a column a covered table lacks, naming table, column and what the table has', () => {
    expect(refusal(route(['public.customer'], 'stor_id = branch.store_id'))).toBe(
      'route "r": public.customer: filter: no column "stor_id"; the table has store_id, id, vip, name',
    );
    // A pattern covering a table without the column.
    expect(refusal(route(['public.*'], 'store_id = branch.store_id'))).toMatch(/^route "r": public\.product: filter: no column "store_id"/);
  });

  it('refuses a literal of another type than the column', () => {
    expect(refusal(route(['public.customer'], 'name = 5'))).toBe('route "r": public.customer: filter: column "name" is text but is compared with 5');
    expect(refusal(route(['public.product'], "price > 'cheap'"))).toMatch(/column "price" is number but is compared with 'cheap', which is not a number/);
    expect(refusal(route(['public.customer'], 'vip > false'))).toMatch(/column "vip" is boolean and cannot be compared with >/);
  });

  it('names an unknown attribute once, whatever the number of tables covered', () => {
    expect(refusal(route(['public.customer', 'sales.sale'], 'store_id = branch.shop'))).toBe('route "r": filter: no branch of this tenant has attribute "shop"');
  });

  it('does not check tables no branch reported yet, nor attributes while the tenant has no branches', () => {
    expect(refusal(route(['public.order'], 'anything = 1'))).toBe('accepted');
    expect(validateRoutes([route(['public.customer'], 'store_id = branch.nobody')], { attributes: null, tables: TABLES })).toHaveLength(1);
  });
});
