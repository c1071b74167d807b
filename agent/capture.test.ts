import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../test/support/pg.js';
import { install } from './install.js';

let db: TestDatabase;
let pool: pg.Pool;

interface Captured {
  seq: number;
  op: string;
  pk: Record<string, string>;
  row: Record<string, string | null> | null;
  hlc: string;
  vv: Record<string, number>;
  tx: string;
}

async function captured(): Promise<Captured[]> {
  const { rows } = await pool.query<Captured>(
    `SELECT seq::int AS seq, op, pk, "row", hlc::text AS hlc, vv, tx::text AS tx FROM hubsync.change_log ORDER BY seq`,
  );
  return rows;
}

beforeAll(async () => {
  db = await createTestDatabase('capture');
  pool = new pg.Pool({ connectionString: db.url, max: 3 });
  await pool.query(`
    CREATE TABLE public.item (id int PRIMARY KEY, name text, price numeric(10,2), at timestamptz, span interval,
                              raw bytea, ratio float8, doc json);
    CREATE TABLE public.pair (a int, b text, v text, PRIMARY KEY (a, b));
    CREATE TABLE public.event (region text, id int, at timestamptz, PRIMARY KEY (region, id)) PARTITION BY LIST (region);
    CREATE TABLE public.event_eu (id int NOT NULL, at timestamptz, region text NOT NULL);
    ALTER TABLE public.event ATTACH PARTITION public.event_eu FOR VALUES IN ('eu');
  `);
  await install(pool, {
    tenantId: 'acme',
    branchId: 'b1',
    tables: [{ name: 'public.item' }, { name: 'public.pair' }, { name: 'public.event' }],
  });
});

afterAll(async () => {
  await pool.end();
  await db.drop();
});

beforeEach(async () => {
  await pool.query(`DELETE FROM hubsync.change_log; DELETE FROM hubsync.row_version;
                    SET hubsync.applying = on; DELETE FROM public.item; DELETE FROM public.pair; DELETE FROM public.event; RESET hubsync.applying`);
  await pool.query(`DELETE FROM hubsync.change_log; DELETE FROM hubsync.row_version`);
});

describe('capture', () => {
  it('records an insert with the whole row as text, its key, a version and the source transaction', async () => {
    await pool.query(`INSERT INTO item (id, name, price) VALUES (1, 'pen', 1.5)`);
    const [c] = await captured();
    expect(c).toMatchObject({
      op: 'insert',
      pk: { id: '1' },
      row: { id: '1', name: 'pen', price: '1.50', at: null, span: null, raw: null, ratio: null, doc: null },
      vv: { b1: 1 },
    });
    expect(BigInt(c?.hlc ?? 0) >> 16n).toBeGreaterThan(BigInt(Date.now() - 60_000));
  });

  it('counts every write of a row in its version vector and keeps its HLC increasing', async () => {
    await pool.query(`INSERT INTO item (id, name) VALUES (1, 'a')`);
    await pool.query(`UPDATE item SET name = 'b' WHERE id = 1`);
    await pool.query(`UPDATE item SET name = 'c' WHERE id = 1`);
    await pool.query(`DELETE FROM item WHERE id = 1`);
    const cs = await captured();
    expect(cs.map((c) => [c.op, c.vv, c.row?.name ?? null])).toEqual([
      ['insert', { b1: 1 }, 'a'],
      ['update', { b1: 2 }, 'b'],
      ['update', { b1: 3 }, 'c'],
      ['delete', { b1: 4 }, null],
    ]);
    const hlcs = cs.map((c) => BigInt(c.hlc));
    for (let i = 1; i < hlcs.length; i++) expect(hlcs[i]).toBeGreaterThan(hlcs[i - 1] as bigint);
    const { rows } = await pool.query(`SELECT vv, deleted, origin FROM hubsync.row_version`);
    expect(rows).toEqual([{ vv: { b1: 4 }, deleted: true, origin: 'b1' }]);
  });

  it('captures every row of a multi-row insert, upsert or COPY once, each with its own version', async () => {
    await pool.query(`INSERT INTO item (id, name) SELECT g, 'n' || g FROM generate_series(1, 3) g`);
    // A deleted row's version lives on: inserting the key again counts on from it.
    await pool.query(`DELETE FROM item WHERE id = 2`);
    await pool.query(`INSERT INTO item (id, name) VALUES (2, 'again'), (4, 'four') ON CONFLICT (id) DO NOTHING`);
    await pool.query(`INSERT INTO item (id, name) VALUES (1, 'up'), (5, 'five') ON CONFLICT (id) DO UPDATE SET name = excluded.name`);
    // (COPY FROM PROGRAM needs a superuser, as the tests' user postgres is.)
    await pool.query(`COPY item (id, name) FROM PROGRAM 'printf "6\\tsix\\n7\\tseven\\n"'`);
    const cs = await captured();
    expect(cs.map((c) => [c.op, c.pk.id, c.row?.name ?? null, c.vv.b1])).toEqual([
      ['insert', '1', 'n1', 1],
      ['insert', '2', 'n2', 1],
      ['insert', '3', 'n3', 1],
      ['delete', '2', null, 2],
      ['insert', '2', 'again', 3],
      ['insert', '4', 'four', 1],
      ['update', '1', 'up', 2],
      ['insert', '5', 'five', 1],
      ['insert', '6', 'six', 1],
      ['insert', '7', 'seven', 1],
    ]);
    const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM hubsync.row_version WHERE NOT deleted`);
    expect(rows[0]?.n).toBe(7);
  });

  it('does not capture an UPDATE that changes nothing', async () => {
    await pool.query(`INSERT INTO item (id, name, doc) VALUES (1, 'a', '{"x": 1}')`);
    await pool.query(`UPDATE item SET name = 'a', doc = doc WHERE id = 1`);
    expect((await captured()).map((c) => c.op)).toEqual(['insert']);
  });

  it('captures a primary-key change as a delete of the old key and an insert of the new one', async () => {
    await pool.query(`INSERT INTO pair VALUES (1, 'x', 'v')`);
    await pool.query(`UPDATE pair SET b = 'y' WHERE a = 1`);
    const cs = await captured();
    expect(cs.map((c) => [c.op, c.pk, c.row])).toEqual([
      ['insert', { a: '1', b: 'x' }, { a: '1', b: 'x', v: 'v' }],
      ['delete', { a: '1', b: 'x' }, null],
      ['insert', { a: '1', b: 'y' }, { a: '1', b: 'y', v: 'v' }],
    ]);
    expect(cs[1]?.tx).toBe(cs[2]?.tx);
  });

  it('keeps the statements of one transaction under one transaction id', async () => {
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      await c.query(`INSERT INTO item (id) VALUES (1), (2)`);
      await c.query(`INSERT INTO pair VALUES (1, 'a', NULL)`);
      await c.query('COMMIT');
    } finally {
      c.release();
    }
    const cs = await captured();
    expect(cs).toHaveLength(3);
    expect(new Set(cs.map((x) => x.tx)).size).toBe(1);
  });

  it('does not capture writes made while hubsync.applying is on (no echo)', async () => {
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      await c.query(`SET LOCAL hubsync.applying = on`);
      await c.query(`INSERT INTO item (id) VALUES (1)`);
      await c.query('COMMIT');
      await c.query(`UPDATE item SET name = 'local' WHERE id = 1`);
    } finally {
      c.release();
    }
    expect((await captured()).map((c) => c.op)).toEqual(['update']);
  });

  it('writes the same text whatever the writer session settings are', async () => {
    const c = await pool.connect();
    try {
      await c.query(`SET "DateStyle" = 'German, DMY'; SET "TimeZone" = 'America/New_York'; SET "IntervalStyle" = 'sql_standard';
                     SET bytea_output = 'escape'; SET extra_float_digits = 0`);
      await c.query(
        `INSERT INTO item (id, at, span, raw, ratio) VALUES (1, '2024-03-05 10:00:00+01', '1 day -02:00:00', '\\x00ff', 0.1)`,
      );
    } finally {
      c.release(true);
    }
    // The same values from a session with the usual settings (the trigger's fast path).
    await pool.query(
      `INSERT INTO item (id, at, span, raw, ratio) VALUES (2, '2024-03-05 10:00:00+01', '1 day -02:00:00', '\\x00ff', 0.1)`,
    );
    const [x, y] = await captured();
    expect(x?.row).toMatchObject({
      at: '2024-03-05 09:00:00+00',
      span: '1 day -02:00:00',
      raw: '\\x00ff',
      ratio: '0.1',
    });
    expect({ ...y?.row, id: '1' }).toEqual(x?.row);
    expect(x?.pk).toEqual({ id: '1' });
  });

  it('captures rows of a partitioned table under its own name, whatever the session time zone', async () => {
    const c = await pool.connect();
    try {
      await c.query(`INSERT INTO event VALUES ('eu', 1, '2024-01-01 12:00:00+00')`);
      await c.query(`SET "TimeZone" = 'Europe/Paris'`);
      await c.query(`INSERT INTO event VALUES ('eu', 2, '2024-01-01 12:00:00+00')`);
    } finally {
      c.release(true);
    }
    const cs = await captured();
    expect(cs.map((x) => [x.pk, x.row?.at])).toEqual([
      [{ region: 'eu', id: '1' }, '2024-01-01 12:00:00+00'],
      [{ region: 'eu', id: '2' }, '2024-01-01 12:00:00+00'],
    ]);
    const { rows } = await pool.query(`SELECT DISTINCT tbl FROM hubsync.change_log`);
    expect(rows).toEqual([{ tbl: 'public.event' }]);
  });

  it('wakes a waiting agent with NOTIFY hubsync, and spares writers the NOTIFY while it is busy', async () => {
    const listener = new pg.Client({ connectionString: db.url });
    await listener.connect();
    try {
      const got: string[] = [];
      listener.on('notification', (n) => got.push(n.channel));
      await listener.query('LISTEN hubsync');
      await pool.query(`UPDATE hubsync.wake SET waiting = false`);
      await pool.query(`INSERT INTO item (id) VALUES (4)`);
      await pool.query(`UPDATE hubsync.wake SET waiting = true`);
      await pool.query(`INSERT INTO item (id) VALUES (5)`);
      await listener.query('SELECT 1');
      await new Promise((r) => setTimeout(r, 100));
      expect(got).toEqual(['hubsync']);
    } finally {
      await pool.query(`UPDATE hubsync.wake SET waiting = false`);
      await listener.end();
    }
  });

  it('stamps local writes no earlier than the clock floor raised by remote timestamps', async () => {
    const future = (BigInt(Date.now() + 3_600_000) << 16n) + 7n;
    await pool.query(`UPDATE hubsync.apply_state SET clock_floor = $1`, [future.toString()]);
    await pool.query(`INSERT INTO item (id) VALUES (9)`);
    await pool.query(`UPDATE hubsync.apply_state SET clock_floor = 0`);
    const [x] = await captured();
    expect(BigInt(x?.hlc ?? 0)).toBe(future);
  });
});
