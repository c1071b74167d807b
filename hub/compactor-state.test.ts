import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../test/support/pg.js';
import type { Change } from '../protocol/index.js';
import { compact } from './compactor.js';
import { append } from './log.js';
import { createPool } from './store/index.js';
import { upgradeTenantSchema } from './store/migrations.js';
import { change } from './testing/harness.js';

/** The compacted state as a snapshot serves it: per row key, the (origin, seq) of its versions. */
async function stateOf(pool: pg.Pool, schema: string): Promise<Record<string, string[]>> {
  const { rows } = await pool.query<{ key: string; versions: Change[] }>(`SELECT key, versions FROM ${schema}.state ORDER BY key`);
  return Object.fromEntries(rows.map((r) => [r.key, r.versions.map((v) => `${v.origin}:${v.seq}`)]));
}

describe('compacted state in the database', () => {
  const db = useTestDatabase('compactor');
  let pool: pg.Pool;
  beforeAll(() => {
    pool = createPool(db.url, { max: 2 });
  });
  afterAll(() => pool.end());

  it('keeps state written before tenant migration 4 (keyed by table and jsonb key) and folds into it afterwards', async () => {
    const schema = 'tenant_upgraded';
    await upgradeTenantSchema(pool, schema, 0, 3);
    // The state as the compactor before migration 4 left it: row 1 and row 2 at one version each.
    const v1 = change('a', 1, { pk: { id: '1' }, vv: { a: 1 } });
    const v2 = change('a', 2, { pk: { id: '2' }, vv: { a: 2 } });
    await append(pool, 'upgraded', schema, 'a', [v1, v2], null);
    await pool.query(
      `INSERT INTO ${schema}.state (tbl, pk, versions, pos)
       SELECT change->>'table', change->'pk', jsonb_build_array(change - 'tx_end'), pos FROM ${schema}.log;
       UPDATE ${schema}.meta SET compacted_upto = 2`,
    );

    expect(await upgradeTenantSchema(pool, schema, 3, 4)).toBe(4);
    const before = await stateOf(pool, schema);
    expect(before).toEqual({ 'public.item {"id": "1"}': ['a:1'], 'public.item {"id": "2"}': ['a:2'] });
    // A retained schema is taken back at version 1 and upgraded again: nothing changes.
    await upgradeTenantSchema(pool, schema, 1);
    expect(await stateOf(pool, schema)).toEqual(before);
    const { rows: pkey } = await pool.query<{ def: string }>(
      `SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = '${schema}.state'::regclass AND contype = 'p'`,
    );
    expect(pkey).toEqual([{ def: 'PRIMARY KEY (key)' }]);

    // Row 1 overwritten by a later version, row 2 written concurrently by b, row 3 new. Kept
    // versions are in HLC order.
    await append(pool, 'upgraded', schema, 'a', [change('a', 3, { pk: { id: '1' }, vv: { a: 3 } })], null);
    await append(
      pool,
      'upgraded',
      schema,
      'b',
      [change('b', 1, { pk: { id: '2' }, vv: { b: 1 } }), change('b', 2, { pk: { id: '3' }, vv: { b: 2 } })],
      null,
    );
    const r = await compact(pool, 'upgraded', schema);
    expect(r).toMatchObject({ ran: true, compactedUpto: 5, entries: 3 });
    expect(await stateOf(pool, schema)).toEqual({
      'public.item {"id": "1"}': ['a:3'],
      'public.item {"id": "2"}': ['b:1', 'a:2'],
      'public.item {"id": "3"}': ['b:2'],
    });
  });

  it('folds several versions of one row in one page, and keeps the bodies without transaction markers', async () => {
    const schema = 'tenant_fresh';
    await upgradeTenantSchema(pool, schema, 0);
    const changes = [1, 2, 3].map((seq) => change('a', seq, { pk: { id: '7' }, vv: { a: seq }, row: { id: '7', name: `v${seq}` } }));
    await append(pool, 'fresh', schema, 'a', changes, null);
    // A targeted entry is point-to-point: compaction moves past it without keeping it.
    await append(pool, 'fresh', schema, 'b', [change('b', 1, { pk: { id: '8' }, vv: { b: 1 } })], 'a');
    await compact(pool, 'fresh', schema);
    const { rows } = await pool.query<{ key: string; tbl: string; pk: unknown; versions: Change[]; pos: string }>(
      `SELECT key, tbl, pk, versions, pos FROM ${schema}.state`,
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ key: 'public.item {"id": "7"}', tbl: 'public.item', pk: { id: '7' }, pos: '3' });
    expect(rows[0]?.versions).toEqual([{ ...(({ tx_end: _t, ...rest }) => rest)(changes[2] as Change) }]);
    // Then a concurrent version and one that dominates both, across two compactions.
    await append(pool, 'fresh', schema, 'c', [change('c', 1, { pk: { id: '7' }, vv: { c: 1 } })], null);
    await compact(pool, 'fresh', schema);
    expect(await stateOf(pool, schema)).toEqual({ 'public.item {"id": "7"}': ['c:1', 'a:3'] });
    await append(pool, 'fresh', schema, 'c', [change('c', 2, { pk: { id: '7' }, vv: { a: 3, c: 2 } })], null);
    await compact(pool, 'fresh', schema);
    expect(await stateOf(pool, schema)).toEqual({ 'public.item {"id": "7"}': ['c:2'] });
  });
});
