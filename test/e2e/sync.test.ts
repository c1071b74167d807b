/**
 * Three branches of one tenant, each with its own PostgreSQL database and agent, syncing through
 * one real hub over WebSockets: what one branch writes, the others hold; concurrent writes end
 * the same everywhere; an offline branch catches up; transactions stay whole; values keep their
 * type. Branch c speaks JSON to the hub, a and b MessagePack.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyAuditDdl, converged, E2E, metric, type Branch, type Hub } from './support.js';

const DDL = `
  CREATE TABLE public.customer (id int PRIMARY KEY, name text NOT NULL, email text, balance numeric(12,2) NOT NULL DEFAULT 0);
  CREATE TABLE public.order_line (order_id int, n int, sku text NOT NULL, qty int NOT NULL, PRIMARY KEY (order_id, n));
  CREATE TABLE public.account (id int PRIMARY KEY, balance numeric(12,2) NOT NULL);
  CREATE TABLE public.ledger (id int PRIMARY KEY, from_id int NOT NULL, to_id int NOT NULL, amount numeric(12,2) NOT NULL);
  CREATE TABLE public.counter (id int PRIMARY KEY, n int NOT NULL);
  ${applyAuditDdl('public.counter')}
  CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'très "content"');
  CREATE TYPE public.addr AS (street text, zip int, at timestamptz);
  CREATE DOMAIN public.pct AS numeric(5,2) CHECK (VALUE BETWEEN 0 AND 100);
  CREATE TABLE public.every (
    id bigint PRIMARY KEY,
    n numeric, n_scaled numeric(30,10), i8 bigint, r4 real, r8 double precision,
    ts timestamp, tstz timestamptz, d date, ttz timetz, iv interval,
    b bytea, j json, jb jsonb, tx text, vc varchar(12), ch char(6), u uuid, bo boolean, m public.mood,
    ai int[], at text[], ats timestamptz[], net inet, money_ money, rng int4range, adr public.addr, p public.pct,
    bits bit varying(16), x xml, pt point, "Größe ""quoted"" col" text
  );
  CREATE TABLE public."Ünïcödé_kéy" (k text PRIMARY KEY, v text);
`;
const TABLES = ['customer', 'order_line', 'account', 'ledger', 'counter', 'every', 'Ünïcödé_kéy'].map((t) => ({ name: `public.${t}` }));
const DUMP = [
  { name: 'public.customer' },
  { name: 'public.order_line', pk: ['order_id', 'n'] },
  { name: 'public.account' },
  { name: 'public.ledger' },
  { name: 'public.counter' },
];

const e2e = new E2E('sync');
let hub: Hub;
let a: Branch;
let b: Branch;
let c: Branch;
let all: Branch[];

beforeAll(async () => {
  hub = await e2e.startHub();
  all = await Promise.all(['a', 'b', 'c'].map((id) => e2e.branch(hub, 'acme', id, DDL, TABLES)));
  [a, b, c] = all as [Branch, Branch, Branch];
  await a.start();
  await b.start();
  await c.start({ AGENT_CODEC: 'json' });
}, 120_000);

afterAll(() => e2e.close(), 60_000);

const tick = (ms = 5): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('three branches through the hub', { timeout: 90_000 }, () => {
  it('brings rows inserted, updated and deleted at each branch to the other two, and every table ends identical', async () => {
    for (const [x, base] of [[a, 0], [b, 100], [c, 200]] as [Branch, number][]) {
      for (let t = 0; t < 4; t++) {
        await x.transaction(
          `INSERT INTO customer (id, name, email) SELECT g, '${x.id} ' || g, 'c' || g || '@${x.id}.example' FROM generate_series(${base + t * 5 + 1}, ${base + t * 5 + 5}) g`,
          `INSERT INTO order_line SELECT ${base + t}, g, 'sku-${x.id}', g FROM generate_series(1, 3) g`,
        );
      }
    }
    const [customers] = await converged(all, DUMP);
    expect(customers).toHaveLength(60);

    // Each branch edits rows another branch created.
    await a.query(`UPDATE customer SET name = 'edited at a', balance = 10.50 WHERE id BETWEEN 101 AND 105`);
    await b.query(`UPDATE customer SET email = NULL WHERE id BETWEEN 201 AND 203`);
    await c.query(`UPDATE order_line SET qty = qty * 10 WHERE order_id = 0`);
    await converged(all, DUMP);

    await a.query(`DELETE FROM customer WHERE id > 210`);
    await b.query(`DELETE FROM order_line WHERE n = 2`);
    await c.query(`DELETE FROM customer WHERE id BETWEEN 1 AND 5`);
    const [after, lines] = await converged(all, DUMP);
    expect(after).toHaveLength(60 - 10 - 5);
    expect(after).toContain('(101,"edited at a",c101@b.example,10.50)');
    expect(after).toContain('(201,"c 201",,0.00)');
    expect(lines).toContain('(0,1,sku-a,10)');
    expect(lines?.some((l) => /^\(\d+,2,/.test(l))).toBe(false);
    for (const x of all) {
      expect(await x.deadLetters()).toEqual([]);
      expect(await x.conflicts()).toEqual([]);
    }
  });

  it('applies a multi-statement transaction whole: a reader at another branch never sees half of one', async () => {
    await a.query(`INSERT INTO account SELECT g, 100 FROM generate_series(1, 10) g`);
    await converged(all, DUMP);
    // Every account's balance is 100 plus what the ledger moved to it minus what it moved away.
    const consistent = `
      SELECT bool_and(a.balance = 100 + coalesce(i.s, 0) - coalesce(o.s, 0)) AS ok, sum(a.balance) AS total, (SELECT count(*) FROM ledger)::int AS moves
      FROM account a
      LEFT JOIN (SELECT to_id, sum(amount) s FROM ledger GROUP BY to_id) i ON i.to_id = a.id
      LEFT JOIN (SELECT from_id, sum(amount) s FROM ledger GROUP BY from_id) o ON o.from_id = a.id`;
    let reading = true;
    const seen: { ok: boolean; total: string; moves: number }[] = [];
    const reader = (async () => {
      while (reading) {
        const [r] = await b.query<{ ok: boolean; total: string; moves: number }>(consistent);
        if (r) seen.push(r);
      }
    })();
    const MOVES = 120;
    for (let m = 1; m <= MOVES; m++) {
      const from = (m % 10) + 1;
      const to = ((m * 7) % 10) + 1;
      await a.transaction(
        `UPDATE account SET balance = balance - ${m % 13} WHERE id = ${from}`,
        `UPDATE account SET balance = balance + ${m % 13} WHERE id = ${to}`,
        `INSERT INTO ledger VALUES (${m}, ${from}, ${to}, ${m % 13})`,
      );
    }
    await converged(all, DUMP);
    reading = false;
    await reader;
    const moves = new Set(seen.map((s) => s.moves));
    // The reader saw the transfers arrive (not just the start and the end), and never half of one.
    expect(moves.size).toBeGreaterThan(2);
    expect(seen.every((s) => s.ok && Number(s.total) === 1000)).toBe(true);
  });

  it('resolves the same row updated at two branches at once to one winner everywhere, records both versions, and tells the loser', async () => {
    await a.query(`INSERT INTO customer (id, name) VALUES (500, 'original')`);
    await converged(all, DUMP);
    // Offline, neither sees the other's write: they are concurrent. b writes later, so b wins.
    await a.stop();
    await b.stop();
    await a.query(`UPDATE customer SET name = 'from a', balance = 1 WHERE id = 500`);
    await tick();
    await b.query(`UPDATE customer SET name = 'from b', email = 'b@x' WHERE id = 500`);
    await a.start();
    await b.start();
    const [customers] = await converged(all, DUMP);
    expect(customers).toContain('(500,"from b",b@x,0.00)');

    const mine = async (x: Branch) => (await x.conflicts()).filter((k) => k.pk.id === '500');
    expect(await mine(a)).toMatchObject([{ winner: 'incoming', local_version: { origin: 'a' }, incoming_version: { origin: 'b' }, report: false }]);
    expect(await mine(b)).toMatchObject([{ winner: 'local', local_version: { origin: 'b' }, incoming_version: { origin: 'a' }, report: true }]);
    // c had neither: it applied the first to arrive and met the second as a conflict.
    expect(await mine(c)).toHaveLength(1);
    // b's own version won, so b reports; the hub tells a, whose write lost.
    await expect.poll(async () => (await mine(b))[0]?.reported_at ?? null, { timeout: 20_000 }).not.toBeNull();
    await expect.poll(() => metric((a.agent as NonNullable<Branch['agent']>).metrics.conflictNotifications), { timeout: 20_000 }).toBeGreaterThanOrEqual(1);
    const audit = await hub.store.listAudit({ tenantId: 'acme' });
    expect(audit.some((e) => e.event === 'conflict.reported' && e.branchId === 'b')).toBe(true);
  });

  it('resolves update against delete the same way everywhere, in either order', async () => {
    await a.query(`INSERT INTO customer (id, name) VALUES (601, 'deleted, then updated'), (602, 'updated, then deleted')`);
    await converged(all, DUMP);
    await a.stop();
    await b.stop();
    await a.query(`DELETE FROM customer WHERE id = 601`);
    await b.query(`UPDATE customer SET name = 'updated at b' WHERE id = 602`);
    await tick();
    await b.query(`UPDATE customer SET name = 'updated at b' WHERE id = 601`);
    await a.query(`DELETE FROM customer WHERE id = 602`);
    await b.start();
    await a.start();
    const [customers] = await converged(all, DUMP);
    // Last write wins: the later update brings 601 back, the later delete removes 602.
    expect(customers).toContain('(601,"updated at b",,0.00)');
    expect(customers?.some((r) => r.startsWith('(602,'))).toBe(false);
    for (const x of all) {
      const v = (await x.versions()) as { pk: { id: string }; deleted: boolean }[];
      expect(v.find((r) => r.pk.id === '602')?.deleted).toBe(true);
      expect((await x.conflicts()).filter((k) => ['601', '602'].includes(k.pk.id ?? '')).length).toBeGreaterThanOrEqual(1);
    }
  });

  it('catches a branch up after it was offline while the others wrote: everything arrives, in source order, none twice', async () => {
    await c.stop();
    await a.query(`INSERT INTO counter VALUES (1, 0)`);
    await b.query(`INSERT INTO counter VALUES (2, 0)`);
    for (let i = 1; i <= 40; i++) {
      await a.query(`UPDATE counter SET n = n + 1 WHERE id = 1`);
      await b.query(`UPDATE counter SET n = n + 1 WHERE id = 2`);
      if (i % 10 === 0) await a.transaction(`INSERT INTO customer (id, name) SELECT g, 'while c was away' FROM generate_series(${700 + i}, ${704 + i}) g`);
    }
    await b.query(`DELETE FROM customer WHERE id = 710`);
    // The others have it all; c has none of it yet.
    await expect.poll(async () => (await b.dump('public.counter')).join(' '), { timeout: 20_000 }).toBe('(1,40) (2,40)');
    expect(await c.dump('public.counter')).toEqual([]);

    await c.start({ AGENT_CODEC: 'json' });
    await converged(all, DUMP);
    const audit = await c.query<{ id: number; op: string; n: number }>(
      `SELECT (coalesce(new_row, old_row)->>'id')::int AS id, op, (new_row->>'n')::int AS n FROM apply_audit WHERE tbl = 'counter' ORDER BY n`,
    );
    for (const id of [1, 2]) {
      // An insert, then updates, in source order and none twice, ending at 40. Changes to one row
      // in one apply transaction are written once, as their final state: catching up in a few
      // transactions, c sees a few of the 41 values (docs/sync-semantics.md "Which order holds").
      const mine = audit.filter((r) => r.id === id);
      expect(mine[0]?.op).toBe('INSERT');
      expect(mine.slice(1).every((r) => r.op === 'UPDATE')).toBe(true);
      expect(mine[mine.length - 1]?.n).toBe(40);
    }
    const order = await c.query<{ n: number }>(`SELECT (new_row->>'n')::int AS n FROM apply_audit WHERE tbl = 'counter' AND new_row->>'id' = '1' ORDER BY apply_audit.n`);
    const values = order.map((r) => r.n);
    expect(values.every((v, i) => i === 0 || v > (values[i - 1] as number))).toBe(true);
  });

  it('carries every value with its exact type and value: numeric precision, bigint, time zones, bytea, json, arrays, NULL, unicode', async () => {
    const c1 = await a.pool.connect();
    try {
      // The writer's session renders dates, intervals, bytea and floats its own way.
      await c1.query(`SET "DateStyle" = 'SQL, DMY'; SET "TimeZone" = 'Asia/Kolkata'; SET "IntervalStyle" = 'iso_8601'; SET bytea_output = 'escape'; SET extra_float_digits = -3`);
      await c1.query(`INSERT INTO every (id, n, n_scaled, i8, r4, r8, ts, tstz, d, ttz, iv) VALUES
        (1, 12345678901234567890.123456789012345678901234567890, 12345678901234567890.1234567891, 9223372036854775807, 3.4028235e38, 0.1,
         '2024-02-29 23:59:59.999999', '2024-02-29 23:59:59.999999+05:30', '4713-01-01 BC', '10:11:12.5-03:30', '1 year 2 months -3 days 04:05:06.789'),
        (2, 'NaN', -0.0000000001, -9223372036854775808, 'NaN', '-Infinity', 'infinity', '-infinity', 'infinity', '00:00:00+14', '-1 mons +1 day -00:00:00.000001'),
        (3, 'Infinity', 0, 0, '-0', 1e-320, NULL, NULL, NULL, NULL, NULL)`);
    } finally {
      c1.release(true);
    }
    await b.query(`INSERT INTO every (id, b, j, jb, tx, vc, ch, u, bo, m, ai, at, ats, net, money_, rng, adr, p, bits, x, pt, "Größe ""quoted"" col") VALUES
      (4, (SELECT decode(string_agg(lpad(to_hex(g), 2, '0'), '' ORDER BY g), 'hex') FROM generate_series(0, 255) g),
       '{"b": 1,   "a": [1, 2.50, "x"], "b": 2}', '{"z": {"y": [true, null, 1.0]}, "a": "\\u00e9"}',
       E'tab\\tnewline\\nquote''s "dq" back\\\\slash émoji 🎉 RTL שלום combining é', 'twelve chars', 'ab', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
       false, 'très "content"', '{1,NULL,-3}', ARRAY['a,b', 'c"d', NULL, '', 'NULL', ' sp '], ARRAY['2020-01-01 00:00:00+00', NULL]::timestamptz[],
       '192.168.0.1/24', 1234.56, '[1,10)', ROW('Main St, "2"', 12345, '2001-02-03 04:05:06+07'), 99.50, B'1010', '<a x="1">b &amp; c</a>', '(1.5,-2)', 'col'),
      (5, '\\x', '[]', 'null', '', '', '', '00000000-0000-0000-0000-000000000000', true, 'sad', '{}', '{}', '{}', '::1', -0.01, 'empty', NULL, 0, B'', '', '(0,0)', NULL),
      (6, NULL, NULL, NULL, repeat('long text ', 20000), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`);
    await c.query(`INSERT INTO "Ünïcödé_kéy" VALUES ('ключ 🔑', 'значение'), ('', 'empty key'), (' ', 'space key'), ('a"b''c\\d', 'quotes')`);
    await a.query(`UPDATE every SET n = NULL, i8 = i8 - 1 WHERE id = 1`);
    await c.query(`UPDATE "Ünïcödé_kéy" SET k = 'renamed 🔑' WHERE k = 'ключ 🔑'`);
    const [, , , , , every, unicode] = await converged(all, [...DUMP, { name: 'public.every' }, { name: 'public.Ünïcödé_kéy', pk: ['k'] }]);
    expect(every).toHaveLength(6);
    expect(every?.[0]).toContain('12345678901234567890.1234567891,9223372036854775806');
    expect(unicode).toContain('("renamed 🔑",значение)');
    // Equal in their own types too, not only as text.
    const q = `SELECT id, md5(b) AS b, n::text, i8::text, r8::text AS r8, tstz, jb, u, iv, adr::text AS adr FROM every ORDER BY id`;
    const want = await a.query(q);
    for (const x of [b, c]) expect(await x.query(q)).toEqual(want);
    for (const x of all) expect(await x.deadLetters()).toEqual([]);
  });
});
