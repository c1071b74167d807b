import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../../test/support/pg.js';
import { branchPositions } from '../log.js';
import { createPool } from './db.js';
import { upgradeTenantSchema } from './migrations.js';
import { MAX_PREPARED, queryPrepared, statementName } from './prepared.js';

describe('prepared statements for the hot queries', () => {
  const db = useTestDatabase('prepared');
  let pool: pg.Pool;
  beforeAll(async () => {
    pool = createPool(db.url, { max: 1 });
  });
  afterAll(() => pool.end());

  /** What the pool's one connection holds: its backend, and its prepared statements. */
  const connectionState = async () => {
    const { rows } = await pool.query<{ pid: number; name: string | null; generic: string | null }>(
      `SELECT pg_backend_pid() AS pid, p.name, p.generic_plans::text AS generic
         FROM (SELECT 1) x LEFT JOIN pg_prepared_statements p ON true`,
    );
    return { pid: rows[0]?.pid, statements: rows.filter((r) => r.name !== null) };
  };

  it('gives the same rows as an unnamed statement, and names are stable and short', async () => {
    const text = 'SELECT $1::int + 1 AS n';
    expect((await queryPrepared<{ n: number }>(pool, text, [41])).rows).toEqual([{ n: 42 }]);
    expect((await queryPrepared<{ n: number }>(pool, text, [1])).rows).toEqual([{ n: 2 }]);
    expect(statementName(text)).toBe(statementName(`${text}`));
    expect(statementName(text).length).toBeLessThanOrEqual(63);
    expect((await connectionState()).statements.map((s) => s.name)).toEqual([statementName(text)]);
  });

  it('holds at most MAX_PREPARED statements per connection: the one that would pass it is replaced', async () => {
    const before = await connectionState();
    const texts = Array.from({ length: MAX_PREPARED + 3 }, (_, i) => `SELECT ${i} AS n, $1::text AS t`);
    for (const [i, text] of texts.entries()) {
      expect((await queryPrepared<{ n: number; t: string }>(pool, text, ['x'])).rows).toEqual([{ n: i, t: 'x' }]);
    }
    const after = await connectionState();
    expect(after.pid).not.toBe(before.pid);
    expect(after.statements.length).toBeLessThanOrEqual(MAX_PREPARED);
  });

  it('a failed query does not leave its connection in the pool', async () => {
    const before = await connectionState();
    await expect(queryPrepared(pool, 'SELECT 1 / $1::int', [0])).rejects.toThrow(/division by zero/);
    expect((await connectionState()).pid).not.toBe(before.pid);
  });

  it("the connect-time positions query settles on a generic plan, even on a fresh tenant's tables", async () => {
    // Without statistics (a tenant created a moment ago) the array-parameter form was planned
    // afresh at every run: the planner's cost for a generic plan never beat a custom one.
    await upgradeTenantSchema(pool, 'tenant_fresh', 0);
    await pool.query(`INSERT INTO tenant_fresh.cursors (branch_id, pos) SELECT 'b' || i, i FROM generate_series(1, 200) i`);
    for (let i = 0; i < 10; i++) {
      const got = await branchPositions(pool, 'tenant_fresh', [`b${i + 1}`, 'nobody', `b${i + 2}`]);
      expect(got.map((p) => p.cursor)).toEqual([i + 1, 0, i + 2]);
    }
    const positions = (await connectionState()).statements.find((s) => s.name?.startsWith('hb_') && Number(s.generic) > 0);
    expect(positions).toBeDefined();
  });
});
