/**
 * Type fidelity: rows written at one branch arrive at another with exactly the same type and
 * value, compared as PostgreSQL text. Changes move outbox → in-process relay (a stand-in for the
 * hub in these unit tests only) → apply.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Change } from '../protocol/messages.js';
import { createTestDatabase, type TestDatabase } from '../test/support/pg.js';
import { cursorOf, dump, openBranch, Relay, type TestBranch } from './testing/branches.js';

const DDL = `
  CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy', 'très "content"');
  CREATE TYPE public.addr AS (street text, zip int, at timestamptz);
  CREATE DOMAIN public.pct AS numeric(5,2) CHECK (VALUE BETWEEN 0 AND 100);
  CREATE TABLE public.every (
    id bigint PRIMARY KEY,
    n numeric, n_scaled numeric(30,10), i2 smallint, i4 int, i8 bigint, r4 real, r8 double precision,
    ts timestamp, tstz timestamptz, d date, t time, ttz timetz, iv interval,
    b bytea, j json, jb jsonb, tx text, vc varchar(12), ch char(6), u uuid, bo boolean, m public.mood,
    ai int[], at text[], a2 int[][], ats timestamptz[], net inet, cidr_ cidr, mac macaddr, money_ money,
    rng int4range, tsr tstzrange, adr public.addr, p public.pct, bits bit varying(16), tsv tsvector, x xml, pt point,
    "Größe ""quoted"" col" text
  );
  CREATE TABLE public."Ünïcödé key" (k text PRIMARY KEY, v text);
`;
const TABLES = [{ name: 'public.every' }, { name: 'public.Ünïcödé key' }];

const ROWS = [
  // Extremes and precision.
  `INSERT INTO every (id, n, n_scaled, i2, i4, i8, r4, r8) VALUES
     (1, 12345678901234567890.123456789012345678901234567890, 12345678901234567890.1234567891, -32768, 2147483647, 9223372036854775807, 3.4028235e38, 0.1),
     (2, 'NaN', -0.0000000001, 32767, -2147483648, -9223372036854775808, 'NaN', '-Infinity'),
     (3, 'Infinity', 0, 0, 0, 0, '-0', 1e-320)`,
  // Time in every shape, written from a session whose settings differ from the pinned ones.
  `SET "DateStyle" = 'SQL, DMY'; SET "TimeZone" = 'Asia/Kolkata'; SET "IntervalStyle" = 'iso_8601'; SET bytea_output = 'escape'; SET extra_float_digits = -3;
   INSERT INTO every (id, ts, tstz, d, t, ttz, iv, ats, tsr, adr) VALUES
     (4, '2024-02-29 23:59:59.999999', '2024-02-29 23:59:59.999999+05:30', '4713-01-01 BC', '24:00:00', '10:11:12.5-03:30',
      '1 year 2 months -3 days 04:05:06.789', ARRAY['2020-01-01 00:00:00+00', NULL]::timestamptz[], '[2024-01-01 00:00+01,2024-06-01)',
      ROW('Main St, "2"', 12345, '2001-02-03 04:05:06+07')),
     (5, 'infinity', '-infinity', 'infinity', '00:00:00', '00:00:00+14', '-1 mons +1 day -00:00:00.000001', '{}', 'empty', NULL);
   RESET ALL`,
  // Bytes, text, json, identifiers, arrays, network, enums, domains and more.
  `INSERT INTO every (id, b, j, jb, tx, vc, ch, u, bo, m, ai, at, a2, net, cidr_, mac, money_, rng, p, bits, tsv, x, pt, "Größe ""quoted"" col") VALUES
     (6, (SELECT decode(string_agg(lpad(to_hex(g), 2, '0'), '' ORDER BY g), 'hex') FROM generate_series(0, 255) g),
      '{"b": 1,   "a": [1, 2.50, "x"], "b": 2}', '{"z": {"y": [true, null, 1.0]}, "a": "\\u00e9"}',
      E'tab\\tnewline\\nquote''s "dq" back\\\\slash émoji 🎉 RTL שלום combining é', 'twelve chars', 'ab', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
      false, 'très "content"', '{1,NULL,-3}', ARRAY['a,b', 'c"d', NULL, '', 'NULL', ' sp '], '{{1,2},{3,4}}',
      '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', 1234.56, '[1,10)', 99.50, B'1010', 'a fat cat:2 sat', '<a x="1">b &amp; c</a>', '(1.5,-2)', 'col with quotes'),
     (7, '\\x', '[]', 'null', '', '', '', '00000000-0000-0000-0000-000000000000', true, 'sad', '{}', '{}', '{}',
      '::1', '::/0', '00:00:00:00:00:00', -0.01, '(,)', 0, B'', '', '', '(0,0)', NULL),
     (8, NULL, NULL, NULL, repeat('long text ', 20000), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
  `INSERT INTO "Ünïcödé key" VALUES ('ключ 🔑', 'значение'), ('', 'empty key'), (' ', 'space key'), ('a"b''c\\d', 'quotes')`,
];

let dbs: TestDatabase[] = [];
let src: TestBranch;
let dst: TestBranch;

beforeAll(async () => {
  dbs = await Promise.all(['src', 'dst'].map((l) => createTestDatabase(`types_${l}`)));
  const opened = await Promise.all(dbs.map((d, i) => openBranch(d.url, `b${i + 1}`, DDL, TABLES)));
  [src, dst] = opened as [TestBranch, TestBranch];
});

afterAll(async () => {
  await Promise.all([src, dst].map((x) => x?.close()));
  await Promise.all(dbs.map((d) => d.drop()));
});

/** Relays what src wrote to dst; returns how many deliveries needed the change-by-change path. */
async function relayAll(relay: Relay): Promise<number> {
  await relay.collect(src);
  const results = await relay.deliver(dst, await cursorOf(dst));
  return results.reduce((n, r) => n + r.fallbacks, 0);
}

describe('type fidelity', () => {
  const relay = new Relay();

  it('carries every value exactly: numeric precision, bigint, time, bytea, json, arrays, NULL, unicode, uuid, interval, enums', async () => {
    const c = await src.pool.connect();
    try {
      for (const sql of ROWS) await c.query(sql);
    } finally {
      c.release(true);
    }
    // Every type goes through the multi-row statements as it does through the per-change ones.
    expect(await relayAll(relay)).toBe(0);
    const want = await dump(src.pool, 'public.every', ['id']);
    expect(want).toHaveLength(8);
    expect(await dump(dst.pool, 'public.every', ['id'])).toEqual(want);
    expect(await dump(dst.pool, 'public.Ünïcödé key', ['k'])).toEqual(await dump(src.pool, 'public.Ünïcödé key', ['k']));
    const { rows } = await dst.pool.query(`SELECT count(*)::int AS n FROM hubsync.dead_letter`);
    expect(rows[0]).toEqual({ n: 0 });
  });

  it('keeps values equal in their own types, not only as text', async () => {
    const q = `SELECT id, md5(b) AS b, n, i8, r8::text AS r8, tstz, jb, u, iv, adr::text AS adr FROM every ORDER BY id`;
    expect((await dst.pool.query(q)).rows).toEqual((await src.pool.query(q)).rows);
  });

  it('carries updates to NULL and back, and deletes', async () => {
    await src.pool.query(`UPDATE every SET n = NULL, b = '\\xdeadbeef', ai = ai || 4 WHERE id IN (1, 6)`);
    await src.pool.query(`UPDATE "Ünïcödé key" SET k = 'renamed 🔑' WHERE k = 'ключ 🔑'`);
    await src.pool.query(`DELETE FROM every WHERE id = 8`);
    expect(await relayAll(relay)).toBe(0);
    expect(await dump(dst.pool, 'public.every', ['id'])).toEqual(await dump(src.pool, 'public.every', ['id']));
    expect(await dump(dst.pool, 'public.Ünïcödé key', ['k'])).toEqual(await dump(src.pool, 'public.Ünïcödé key', ['k']));
  });

  it('refuses a value that does not fit its column rather than truncating it, and applies the rest', async () => {
    const hlc = (BigInt(Date.now()) << 16n).toString(16).padStart(16, '0');
    const insert = (id: number, row: Record<string, string>): Change => ({
      table: 'public.every',
      op: 'insert',
      pk: { id: String(id) },
      row: { id: String(id), ...row },
      hlc,
      vv: { far: id },
      origin: 'far',
      seq: id,
      tx: String(id),
      tx_end: true,
    });
    relay.append([
      insert(901, { vc: 'thirteen char' }),
      insert(902, { ch: 'seven c' }),
      insert(903, { bits: '10101010101010101' }),
      insert(904, { p: '100.01' }),
      insert(905, { n_scaled: '123456789012345678901.5' }),
      insert(906, { vc: 'fits', ch: 'fits', bits: '1', p: '100' }),
    ]);
    const [r] = await relay.deliver(dst, await cursorOf(dst), 500);
    expect(r).toMatchObject({ applied: 1, deadLetters: 5 });
    const kept = await dst.pool.query<{ id: string; vc: string }>(`SELECT id::text, vc FROM every WHERE id > 900 ORDER BY id`);
    expect(kept.rows).toEqual([{ id: '906', vc: 'fits' }]);
    const dead = await dst.pool.query<{ sqlstate: string }>(`SELECT sqlstate FROM hubsync.dead_letter ORDER BY id`);
    expect(dead.rows.map((x) => x.sqlstate)).toEqual(['22001', '22001', '22001', '23514', '22003']);
  });

  it('applies whole deliveries with multi-row statements, not change by change', async () => {
    await src.pool.query(`INSERT INTO every (id, tx, ai) SELECT g, 'row ' || g, ARRAY[g, NULL] FROM generate_series(1000, 1099) g`);
    await src.pool.query(`UPDATE every SET tx = tx || ' updated', vc = 'v' || id WHERE id >= 1000`);
    await src.pool.query(`DELETE FROM every WHERE id >= 1050`);
    await relay.collect(src);
    const results = [];
    for (const page of relay.pages(dst.id, await cursorOf(dst), 500)) results.push(await dst.engine.deliver(page));
    expect(results.reduce((n, x) => n + x.applied, 0)).toBe(250);
    expect(results.reduce((n, x) => n + x.fallbacks, 0)).toBe(0);
    const q = `SELECT e::text AS t FROM every e WHERE id >= 1000 ORDER BY id`;
    expect((await dst.pool.query(q)).rows).toEqual((await src.pool.query(q)).rows);
  });
});
