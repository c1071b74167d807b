/** What a branch decides about a schema change before running anything, and how old rows then read. */
import { describe, expect, it } from 'vitest';
import type { Change } from '../../protocol/messages.js';
import { planSchemaChange, type SchemaStep } from '../../protocol/schema-change.js';
import { isSchemaChange, schemaChange, schemaRowOf, SCHEMA_ORIGIN } from '../../protocol/schema-entry.js';
import type { TableInfo } from '../catalog.js';
import { checkChange } from '../change-check.js';
import { decideSchemaChange } from './plan.js';

const item: TableInfo = {
  name: 'public.item',
  columns: [
    { name: 'id', type: 'integer' },
    { name: 'name', type: 'text' },
    { name: 'qty', type: 'integer' },
  ],
  pk: ['id'],
  pins: [],
  strategy: undefined,
  relkind: 'r',
  merge: 'row',
  additive: [],
};
const installed = new Map([[item.name, item]]);

async function steps(sql: string): Promise<readonly SchemaStep[]> {
  const p = await planSchemaChange(sql, new Set(installed.keys()));
  if (!p.ok) throw new Error(p.problems.join('; '));
  return p.steps;
}

describe('decideSchemaChange', () => {
  it('applies the next version, skips one applied already, and refuses a gap', async () => {
    const s = await steps('ALTER TABLE public.item ADD COLUMN colour text');
    expect(decideSchemaChange(3, 2, s, installed).action).toBe('apply');
    expect(decideSchemaChange(2, 2, s, installed)).toMatchObject({ action: 'skip' });
    expect(decideSchemaChange(5, 2, s, installed)).toEqual({ action: 'refuse', reason: 'schema change 5 arrived while this branch is at version 2: versions 3–4 are missing here' });
  });

  it('reinstalls the capture of every table touched, and of a table created', async () => {
    const d = decideSchemaChange(1, 0, await steps('CREATE TABLE public.note (id int PRIMARY KEY); CREATE INDEX i ON public.item (name); DROP INDEX public.j'), installed);
    expect(d.action === 'apply' && [...d.tables.keys()]).toEqual(['public.note', 'public.item']);
    expect(d.action === 'apply' && d.tables.get('public.note')?.before).toBeNull();
  });

  it('keeps renamed and dropped columns, following a column renamed twice', async () => {
    const d = decideSchemaChange(1, 0, await steps('ALTER TABLE public.item RENAME COLUMN qty TO amount; ALTER TABLE public.item RENAME COLUMN amount TO count; ALTER TABLE public.item DROP COLUMN name'), installed);
    expect(d.action === 'apply' && d.tables.get('public.item')?.retired).toEqual({ qty: 'count', amount: 'count', name: null });
  });

  it('refuses key columns, column-level tables and tables not synced here', async () => {
    expect(decideSchemaChange(1, 0, await steps('ALTER TABLE public.item DROP COLUMN id'), installed)).toMatchObject({ action: 'refuse', reason: expect.stringContaining('primary key') });
    const columnLevel = new Map([[item.name, { ...item, merge: 'column' as const }]]);
    expect(decideSchemaChange(1, 0, await steps('ALTER TABLE public.item RENAME COLUMN qty TO n'), columnLevel)).toMatchObject({ action: 'refuse', reason: expect.stringContaining('merges by column') });
    const p = await planSchemaChange('ALTER TABLE public.other ADD COLUMN x int', null);
    expect(p.ok && decideSchemaChange(1, 0, p.steps, installed)).toMatchObject({ action: 'refuse', reason: 'public.other is not a synced table at this branch' });
  });
});

describe('rows written before a schema change', () => {
  const at = (row: Record<string, string>): Change => ({ table: 'public.item', op: 'insert', pk: { id: '1' }, row, hlc: '0000000000010000', vv: { a: 1 }, origin: 'a', seq: 1, tx: '1' });
  const after: TableInfo = { ...item, columns: [item.columns[0], { name: 'amount', type: 'integer' }] as TableInfo['columns'], retired: { qty: 'amount', name: null } };
  const tables = new Map([[after.name, after]]);

  it('apply: a dropped column is ignored, a renamed one written under its new name', () => {
    expect(checkChange(at({ id: '1', name: 'x', qty: '5' }), tables)).toMatchObject({ ok: true, columns: ['id', 'amount'], values: ['1', '5'] });
    // Written at the new version too: the new name wins.
    expect(checkChange(at({ id: '1', qty: '5', amount: '6' }), tables)).toMatchObject({ ok: true, columns: ['id', 'amount'], values: ['1', '6'] });
    expect(checkChange(at({ id: '1', other: 'y' }), tables)).toEqual({ ok: false, reason: 'column "other" is not synced in public.item' });
  });
});

describe('schema-change log entries', () => {
  it('round-trip, and only the hub can publish one', () => {
    const c = schemaChange({ version: 4, sql: 'ALTER TABLE public.item ADD COLUMN x int', description: null }, 1_700_000_000_000);
    expect(isSchemaChange(c)).toBe(true);
    expect(c.origin).toBe(SCHEMA_ORIGIN);
    expect(schemaRowOf(c)).toEqual({ ok: true, row: { version: 4, sql: 'ALTER TABLE public.item ADD COLUMN x int', description: null } });
    expect(schemaRowOf({ ...c, origin: 'store-1' })).toMatchObject({ ok: false, reason: expect.stringContaining('only the hub publishes schema changes') });
    expect(schemaRowOf({ ...c, seq: 5 })).toMatchObject({ ok: false });
    expect(schemaRowOf({ ...c, row: { version: 4 } })).toMatchObject({ ok: false, reason: expect.stringContaining('malformed') });
  });
});
