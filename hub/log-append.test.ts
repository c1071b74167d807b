import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../test/support/pg.js';
import { appendMany } from './log.js';
import { createPool } from './store/index.js';
import { upgradeTenantSchema } from './store/migrations.js';
import { change } from './testing/harness.js';

describe('appending to the tenant log', () => {
  const db = useTestDatabase('append');
  let pool: pg.Pool;
  const schema = 'tenant_append';
  beforeAll(async () => {
    pool = createPool(db.url, { max: 2 });
    await upgradeTenantSchema(pool, schema, 0);
  });
  afterAll(() => pool.end());

  const stored = async () =>
    (await pool.query<{ pos: string; seq: string }>(`SELECT pos, origin_seq AS seq FROM ${schema}.log WHERE origin = 'a' ORDER BY pos`)).rows.map(
      (r) => [Number(r.pos), Number(r.seq)],
    );

  it('gives each batch of a group its own contiguous offsets, in order', async () => {
    const [x, y] = await appendMany(pool, 't', schema, 'a', [
      { changes: [change('a', 1), change('a', 2)], target: null },
      { changes: [change('a', 3), change('a', 4), change('a', 5)], target: null },
    ]);
    expect(x).toMatchObject({ offsets: [1, 2], duplicates: 0, range: { first: 1, last: 2 } });
    expect(y).toMatchObject({ offsets: [3, 4, 5], duplicates: 0, range: { first: 3, last: 5 } });
    expect(y?.added.map(([pos, c]) => [pos, c.seq])).toEqual([
      [3, 3],
      [4, 4],
      [5, 5],
    ]);
  });

  it('stores a resent change once, answers with its first offset, and adds only what is new', async () => {
    // Seq 5 again (stored before), 6 new, 6 repeated inside the batch, 7 new.
    const [r] = await appendMany(pool, 't', schema, 'a', [
      { changes: [change('a', 5), change('a', 6), change('a', 6), change('a', 7)], target: null },
    ]);
    // Offsets 6..9 were reserved; 6 and 7 went to seqs 6 and 7 (at their places in the batch: 7 and 9).
    expect(r?.offsets).toEqual([5, 7, 7, 9]);
    expect(r?.added.map(([pos, c]) => [pos, c.seq])).toEqual([
      [7, 6],
      [9, 7],
    ]);
    expect(r).toMatchObject({ duplicates: 2, range: { first: 6, last: 9 } });
    expect(await stored()).toEqual([
      [1, 1],
      [2, 2],
      [3, 3],
      [4, 4],
      [5, 5],
      [7, 6],
      [9, 7],
    ]);
  });

  it('adds nothing for a batch that was all stored before', async () => {
    const [r] = await appendMany(pool, 't', schema, 'a', [{ changes: [change('a', 1), change('a', 2)], target: null }]);
    expect(r).toMatchObject({ offsets: [1, 2], added: [], duplicates: 2, range: null });
  });

  it('commits offsets in order under concurrent appenders: a reader that sees offset n sees all below it', async () => {
    const s2 = 'tenant_append_race';
    await upgradeTenantSchema(pool, s2, 0);
    const writers = createPool(db.url, { max: 4 });
    try {
      let done = false;
      const gaps: string[] = [];
      const reader = (async () => {
        while (!done) {
          const { rows } = await pool.query<{ top: string | null; n: string }>(`SELECT max(pos) AS top, count(*) AS n FROM ${s2}.log`);
          const top = Number(rows[0]?.top ?? 0);
          if (Number(rows[0]?.n) !== top) gaps.push(`saw offset ${top} with ${rows[0]?.n} entries`);
        }
      })();
      await Promise.all(
        ['w', 'x', 'y', 'z'].map(async (origin) => {
          for (let i = 0; i < 40; i++) {
            await appendMany(writers, 't-race', s2, origin, [{ changes: [change(origin, 2 * i + 1), change(origin, 2 * i + 2)], target: null }]);
          }
        }),
      );
      done = true;
      await reader;
      expect(gaps).toEqual([]);
      const { rows } = await pool.query<{ n: string; top: string }>(`SELECT count(*) AS n, max(pos) AS top FROM ${s2}.log`);
      expect(rows[0]).toEqual({ n: '320', top: '320' });
    } finally {
      await writers.end();
    }
  });
});
