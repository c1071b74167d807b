/**
 * The apply engine between real branch databases. Changes move outbox → relay → apply; the
 * relay in agent/testing/branches.ts is an in-process stand-in for the hub in these unit tests
 * only (offsets, own-change skipping, paging); the hub itself is exercised by test/ end to end.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ConflictSchema, type Change, type LogEntry } from '../protocol/messages.js';
import { createTestDatabase, type TestDatabase } from '../test/support/pg.js';
import { ApplyEngine } from './apply/engine.js';
import { tableSql } from './apply/statements.js';
import { jsonbLiteral } from './sql/jsonb.js';
import { cursorOf, drainOutbox, dump, openBranch, Relay, type TestBranch } from './testing/branches.js';

const DDL = `
  CREATE TABLE public.customer (id int PRIMARY KEY, name text, email text UNIQUE, balance numeric(12,2));
  CREATE TABLE public.line (order_id int, n int, sku text, PRIMARY KEY (order_id, n));
  CREATE TABLE public.victim (id int PRIMARY KEY);
  CREATE TABLE public.unsynced (id int PRIMARY KEY, secret text);
`;
const TABLES = [{ name: 'public.customer' }, { name: 'public.line' }, { name: 'public.victim' }];

let dbs: TestDatabase[] = [];
let a: TestBranch;
let b: TestBranch;
let c: TestBranch;

beforeAll(async () => {
  dbs = await Promise.all(['a', 'b', 'c'].map((l) => createTestDatabase(`apply_${l}`)));
  const opened = await Promise.all(dbs.map((d, i) => openBranch(d.url, `b${i + 1}`, DDL, TABLES)));
  [a, b, c] = opened as [TestBranch, TestBranch, TestBranch];
});

afterAll(async () => {
  await Promise.all([a, b, c].map((x) => x?.close()));
  await Promise.all(dbs.map((d) => d.drop()));
});

async function reset(): Promise<void> {
  for (const x of [a, b, c]) {
    await x.pool.query(`SET hubsync.applying = on; DELETE FROM customer; DELETE FROM line; RESET hubsync.applying;
      DELETE FROM hubsync.change_log; DELETE FROM hubsync.row_version; DELETE FROM hubsync.conflicts; DELETE FROM hubsync.dead_letter;
      UPDATE hubsync.apply_state SET "cursor" = 0, clock_floor = 0`);
  }
}

let relay: Relay;

/** Sends the outboxes of `order` to the relay, in that order, and delivers the new log entries to every branch. */
async function sync(order: TestBranch[]): Promise<Relay> {
  for (const x of order) await relay.collect(x);
  for (const x of [a, b, c]) await relay.deliver(x, await cursorOf(x));
  return relay;
}

async function customers(x: TestBranch): Promise<string[]> {
  return dump(x.pool, 'public.customer', ['id']);
}

/** HLCs have millisecond resolution: let the clock move so "later" means later. */
const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 3));

function entry(offset: number, change: Change): LogEntry {
  return [offset, change];
}

function change(overrides: Partial<Change>): Change {
  return {
    table: 'public.customer',
    op: 'insert',
    pk: { id: '100' },
    row: { id: '100', name: 'ok' },
    hlc: (BigInt(Date.now()) << 16n).toString(16).padStart(16, '0'),
    vv: { evil: 1 },
    origin: 'evil',
    seq: 1,
    tx: '1',
    ...overrides,
  };
}

beforeEach(async () => {
  await reset();
  relay = new Relay();
});

describe('apply', () => {
  it('brings inserts, updates and deletes from one branch to the others, without echo', async () => {
    await a.pool.query(`INSERT INTO customer VALUES (1, 'Ada', 'ada@x', 10.50), (2, 'Bob', NULL, 0)`);
    await a.pool.query(`UPDATE customer SET balance = balance + 1 WHERE id = 1`);
    await a.pool.query(`DELETE FROM customer WHERE id = 2`);
    await sync([a]);
    const want = ['(1,Ada,ada@x,11.50)'];
    expect(await customers(a)).toEqual(want);
    expect(await customers(b)).toEqual(want);
    expect(await customers(c)).toEqual(want);
    // Applied changes are not captured again.
    expect(await b.outbox.pending()).toBe(0);
    const { rows } = await b.pool.query(`SELECT vv, deleted, origin FROM hubsync.row_version ORDER BY pk`);
    expect(rows).toEqual([
      { vv: { b1: 2 }, deleted: false, origin: 'b1' },
      { vv: { b1: 2 }, deleted: true, origin: 'b1' },
    ]);
  });

  it('moves the cursor with the data and skips what it already applied', async () => {
    await a.pool.query(`INSERT INTO customer VALUES (1, 'Ada', NULL, 1)`);
    const relay = new Relay();
    await relay.collect(a);
    const [page] = relay.pages('b2', 0);
    const first = await b.engine.deliver(page ?? []);
    expect(first).toMatchObject({ applied: 1, skipped: 0, cursor: 1 });
    // The hub redelivers after a reconnect: nothing happens twice.
    await b.pool.query(`UPDATE customer SET name = 'changed here' WHERE id = 1`);
    const again = await b.engine.deliver(page ?? []);
    expect(again).toMatchObject({ applied: 0, skipped: 1, cursor: 1 });
    expect(await customers(b)).toEqual(['(1,"changed here",,1.00)']);
  });

  it('treats a redelivered change it has already seen as a duplicate, even past the cursor', async () => {
    await a.pool.query(`INSERT INTO customer VALUES (1, 'Ada', NULL, 1)`);
    const [batch] = await drainOutbox(a);
    const r1 = await b.engine.snapshotChunk(batch ?? []);
    const r2 = await b.engine.snapshotChunk(batch ?? []);
    expect([r1.applied, r2.applied, r2.skipped]).toEqual([1, 0, 1]);
  });

  it('resolves the same row updated at two branches to one winner everywhere and records both versions', async () => {
    await a.pool.query(`INSERT INTO customer VALUES (1, 'orig', NULL, 0)`);
    await sync([a]);
    await a.pool.query(`UPDATE customer SET name = 'from a' WHERE id = 1`);
    await tick();
    await b.pool.query(`UPDATE customer SET name = 'from b' WHERE id = 1`);
    await sync([b, a]);
    const final = await customers(a);
    expect(await customers(b)).toEqual(final);
    expect(await customers(c)).toEqual(final);
    // Last writer wins: b wrote after a.
    expect(final).toEqual(['(1,"from b",,0.00)']);
    for (const x of [a, b]) {
      const { rows } = await x.pool.query(
        `SELECT winner, local_row->>'name' AS local, incoming_row->>'name' AS incoming, local_version, incoming_version, report FROM hubsync.conflicts`,
      );
      expect(rows).toHaveLength(1);
      expect(new Set([rows[0].local, rows[0].incoming])).toEqual(new Set(['from a', 'from b']));
    }
    const atA = (await a.pool.query(`SELECT winner, report FROM hubsync.conflicts`)).rows[0];
    const atB = (await b.pool.query(`SELECT winner, report FROM hubsync.conflicts`)).rows[0];
    expect(atA).toEqual({ winner: 'incoming', report: false });
    // Only the branch whose own version won reports: one report per conflicting pair.
    expect(atB).toEqual({ winner: 'local', report: true });
    // Versions agree everywhere (merged vectors).
    const vvs = await Promise.all([a, b, c].map(async (x) => (await x.pool.query(`SELECT vv, origin FROM hubsync.row_version`)).rows));
    expect(vvs[1]).toEqual(vvs[0]);
    expect(vvs[2]).toEqual(vvs[0]);
  });

  it('hands back the reports to send, valid on the wire', async () => {
    await a.pool.query(`INSERT INTO customer VALUES (1, 'orig', NULL, 0)`);
    await sync([a]);
    await a.pool.query(`UPDATE customer SET name = 'older' WHERE id = 1`);
    await tick();
    await b.pool.query(`UPDATE customer SET name = 'newer' WHERE id = 1`);
    await relay.collect(a);
    const [page] = relay.pages('b2', await cursorOf(b));
    const r = await b.engine.deliver(page ?? []);
    expect(r.conflicts).toBe(1);
    expect(r.reports).toHaveLength(1);
    const report = r.reports[0]?.conflict;
    expect(ConflictSchema.safeParse(report).success).toBe(true);
    expect(report).toMatchObject({
      kind: 'concurrent',
      table: 'public.customer',
      pk: { id: '1' },
      strategy: 'last-write-wins',
      winner: { origin: 'b2', deleted: false },
      loser: { origin: 'b1', deleted: false },
      winner_row: { name: 'newer' },
      loser_row: { name: 'older' },
    });
  });

  it('resolves update against delete the same way everywhere, and a tombstone keeps a loser from resurrecting the row', async () => {
    await a.pool.query(`INSERT INTO customer VALUES (1, 'x', NULL, 0), (2, 'y', NULL, 0)`);
    await sync([a]);
    // Row 1: a deletes, then b updates later → the update wins.
    await a.pool.query(`DELETE FROM customer WHERE id = 1`);
    await tick();
    await b.pool.query(`UPDATE customer SET name = 'x2' WHERE id = 1`);
    // Row 2: b updates, then a deletes later → the delete wins.
    await b.pool.query(`UPDATE customer SET name = 'y2' WHERE id = 2`);
    await tick();
    await a.pool.query(`DELETE FROM customer WHERE id = 2`);
    await sync([a, b]);
    for (const x of [a, b, c]) expect(await customers(x)).toEqual(['(1,x2,,0.00)']);
    for (const x of [a, b]) {
      const { rows } = await x.pool.query(`SELECT pk->>'id' AS id FROM hubsync.conflicts ORDER BY 1`);
      expect(rows.map((r) => r.id)).toEqual(['1', '2']);
    }
    const { rows } = await c.pool.query(`SELECT pk->>'id' AS id, deleted FROM hubsync.row_version ORDER BY 1`);
    expect(rows).toEqual([
      { id: '1', deleted: false },
      { id: '2', deleted: true },
    ]);
  });

  it('follows branch priority when the table is configured for it', async () => {
    const dbp = await Promise.all(['p1', 'p2'].map((l) => createTestDatabase(`apply_${l}`)));
    const cfg = [{ name: 'public.customer', conflictStrategy: 'branch-priority' as const }];
    const policy = { conflict_strategy: 'last-write-wins' as const, branch_priority: ['hq', 'shop'] };
    const [hq, shop] = await Promise.all([
      openBranch(dbp[0]?.url ?? '', 'hq', DDL, cfg, { policy }),
      openBranch(dbp[1]?.url ?? '', 'shop', DDL, cfg, { policy }),
    ]);
    try {
      // The row starts at the shop, so only hq's edit carries hq's rank.
      await shop.pool.query(`INSERT INTO customer VALUES (1, 'orig', NULL, 0)`);
      const relay = new Relay();
      await relay.collect(shop);
      await relay.deliver(hq, 0);
      await hq.pool.query(`UPDATE customer SET name = 'hq says' WHERE id = 1`);
      await tick();
      await shop.pool.query(`UPDATE customer SET name = 'shop says, later' WHERE id = 1`);
      await relay.collect(shop);
      await relay.collect(hq);
      await relay.deliver(shop, await cursorOf(shop));
      await relay.deliver(hq, await cursorOf(hq));
      for (const x of [hq, shop]) expect(await dump(x.pool, 'public.customer', ['id'])).toEqual(['(1,"hq says",,0.00)']);
    } finally {
      await Promise.all([hq.close(), shop.close()]);
      await Promise.all(dbp.map((d) => d.drop()));
    }
  });

  it('applies a multi-statement transaction atomically: a concurrent reader never sees half of it', async () => {
    await a.pool.query(`INSERT INTO customer VALUES (1, 'c', NULL, 0)`);
    const t = await a.pool.connect();
    try {
      await t.query('BEGIN');
      for (let n = 1; n <= 5; n++) await t.query(`INSERT INTO line VALUES (1, $1, 'sku')`, [n]);
      await t.query(`UPDATE customer SET balance = 5 WHERE id = 1`);
      await t.query('COMMIT');
    } finally {
      t.release();
    }
    const relay = new Relay();
    await relay.collect(a);
    // Slow the apply down so the reader gets many looks at the middle of it.
    const slow = new ApplyEngine(b.pool, b.tables, {
      branchId: 'b2',
      maxForwardSkewMs: 300_000,
      hooks: { beforeStatement: () => new Promise((r) => setTimeout(r, 5)) },
    });
    const seen = new Set<string>();
    let done = false;
    const look = async () => {
      const { rows } = await b.pool.query<{ s: string }>(
        `SELECT (SELECT count(*) FROM line)::text || '/' || coalesce((SELECT balance::text FROM customer WHERE id = 1), '-') AS s`,
      );
      seen.add(rows[0]?.s ?? '');
    };
    const reader = (async () => {
      while (!done) await look();
    })();
    for (const page of relay.pages('b2', 0)) await slow.deliver(page);
    done = true;
    await reader;
    // The reader's last look may have begun before the commit: one more, after it.
    await look();
    expect([...seen].every((s) => s === '0/-' || s === '5/5.00' || s === '0/0.00')).toBe(true);
    expect(seen.has('5/5.00')).toBe(true);
  });

  it('refuses changes naming anything not configured, executes nothing of them, and goes on', async () => {
    const statements: string[] = [];
    const watched = new ApplyEngine(b.pool, b.tables, {
      branchId: 'b2',
      maxForwardSkewMs: 300_000,
      hooks: { beforeStatement: (_n, _pid, text) => void statements.push(text) },
    });
    const evil = [
      change({ table: 'public.unsynced', row: { id: '1', secret: 'x' }, pk: { id: '1' }, seq: 1 }),
      change({ table: 'public.victim"; DROP TABLE public.victim; --', seq: 2 }),
      change({ row: { id: '100', 'name" = NULL; DROP TABLE public.victim; --': 'x' }, seq: 3 }),
      change({ pk: { id: '100', 'id"; DROP TABLE public.victim; --': '1' }, seq: 4 }),
      change({ pk: { nope: '1' }, row: { nope: '1' }, seq: 5 }),
      change({ row: { id: '100', name: 'ok', secret: 'leak' }, seq: 6 }),
      change({ seq: 7, tx: '2' }),
    ];
    const res = await watched.deliver(evil.map((ch, i) => entry(i + 1, ch)));
    // Nothing the changes named reached the database as SQL: only inside string literals, as data.
    const outsideLiterals = (s: string): string => s.replace(/E'(?:[^'\\]|''|\\.)*'/g, "''");
    expect(statements.map(outsideLiterals).filter((s) => /DROP|unsynced|secret|nope/.test(s))).toEqual([]);
    expect(statements.some((s) => /DROP/.test(s))).toBe(true);
    expect(res).toMatchObject({ applied: 1, deadLetters: 6, cursor: 7 });
    expect(await customers(b)).toEqual(['(100,ok,,)']);
    const victim = await b.pool.query(`SELECT to_regclass('public.victim') IS NOT NULL AS ok`);
    expect(victim.rows[0]).toEqual({ ok: true });
    expect((await b.pool.query(`SELECT count(*)::int AS n FROM unsynced`)).rows[0]).toEqual({ n: 0 });
    const { rows } = await b.pool.query(`SELECT seq::int, reason FROM hubsync.dead_letter ORDER BY seq`);
    expect(rows.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(rows[0].reason).toContain('is not synced here');
    expect(rows[2].reason).toContain('is not synced in public.customer');
    expect(res.reports.every((r) => r.kind === 'dead-letter' && ConflictSchema.safeParse(r.conflict).success)).toBe(true);
  });

  it('dead-letters a change that violates another unique key, with the reason, and goes on', async () => {
    await b.pool.query(`INSERT INTO customer VALUES (50, 'local', 'taken@x', 0)`);
    const t = await a.pool.connect();
    try {
      await t.query('BEGIN');
      await t.query(`INSERT INTO customer VALUES (1, 'dup', 'taken@x', 0)`);
      await t.query(`INSERT INTO customer VALUES (2, 'fine', 'free@x', 0)`);
      await t.query('COMMIT');
    } finally {
      t.release();
    }
    await a.pool.query(`INSERT INTO customer VALUES (3, 'later', NULL, 0)`);
    const relay = new Relay();
    await relay.collect(a);
    const results = await relay.deliver(b, 0);
    expect(results.reduce((n, r) => n + r.deadLetters, 0)).toBe(1);
    expect(await customers(b)).toEqual(['(2,fine,free@x,0.00)', '(3,later,,0.00)', '(50,local,taken@x,0.00)']);
    const { rows } = await b.pool.query(`SELECT sqlstate, reason, change->'pk' AS pk FROM hubsync.dead_letter`);
    expect(rows).toEqual([{ sqlstate: '23505', reason: expect.stringContaining('customer_email_key'), pk: { id: '1' } }]);
    expect(await cursorOf(b)).toBe(3);
  });

  it('dead-letters a value its column type rejects', async () => {
    const res = await b.engine.deliver([
      entry(1, change({ row: { id: '100', balance: 'not a number' } })),
      entry(2, change({ pk: { id: 'abc' }, row: { id: 'abc' }, seq: 2, tx: '2' })),
      entry(3, change({ pk: { id: '007' }, row: { id: '007' }, seq: 3, tx: '3' })),
    ]);
    expect(res.deadLetters).toBe(3);
    const { rows } = await b.pool.query(`SELECT sqlstate, reason FROM hubsync.dead_letter ORDER BY id`);
    expect(rows[0]).toMatchObject({ sqlstate: '22P02' });
    expect(rows[1]).toMatchObject({ sqlstate: '22P02' });
    // "007" is an int key, but not as a capture would write it: refusing keeps versions keyed alike everywhere.
    expect(rows[2].reason).toContain('canonical');
  });

  it('raises the clock floor to remote timestamps, but not to one beyond the skew limit', async () => {
    const near = (BigInt(Date.now() + 60_000) << 16n) | 3n;
    const far = BigInt(Date.now() + 3_600_000) << 16n;
    const res = await b.engine.deliver([
      entry(1, change({ hlc: near.toString(16).padStart(16, '0') })),
      entry(2, change({ pk: { id: '101' }, row: { id: '101' }, seq: 2, tx: '2', hlc: far.toString(16).padStart(16, '0') })),
    ]);
    expect(res).toMatchObject({ applied: 2, skewed: 1 });
    const { rows } = await b.pool.query(`SELECT clock_floor::text AS f FROM hubsync.apply_state`);
    expect(rows[0].f).toBe(near.toString());
    await b.pool.query(`UPDATE customer SET name = 'local' WHERE id = 100`);
    const [batch] = await drainOutbox(b);
    expect(BigInt(`0x${batch?.[0]?.hlc}`)).toBeGreaterThan(near);
  });

  it('finds the rows of a delivery by one index probe per key, not by reading the whole table', async () => {
    await b.pool.query(`SET hubsync.applying = on;
      INSERT INTO customer SELECT g, 'c' || g FROM generate_series(1, 5000) g;
      INSERT INTO line SELECT g / 10, g % 10, 's' FROM generate_series(1, 5000) g;
      RESET hubsync.applying;
      INSERT INTO hubsync.row_version SELECT 'public.customer ' || jsonb_build_object('id', g::text)::text, 'public.customer',
        jsonb_build_object('id', g::text), '{"b9": 1}', 1, 'b9', false FROM generate_series(1, 5000) g;
      ANALYZE customer; ANALYZE line; ANALYZE hubsync.row_version`);
    const keys = Array.from({ length: 20 }, (_, i) => String(100 + i));
    for (const [table, params] of [
      ['public.customer', keys.map((k) => [k])],
      ['public.line', keys.map((k) => [k, '3'])],
    ] as const) {
      const t = b.tables.get(table);
      if (!t) throw new Error(`${table} is not installed`);
      const read = tableSql(t, new Map(t.columns.map((col) => [col.name, col.type]))).read(jsonbLiteral(params));
      const plan = (await b.pool.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${read}`)).rows.map((r) => r['QUERY PLAN']).join('\n');
      expect(plan, table).not.toMatch(/Seq Scan/);
      expect(plan, table).toMatch(new RegExp(`Index Scan using ${table.slice('public.'.length)}_pkey`));
      expect(plan, table).toMatch(/Index Scan using row_version_pkey/);
    }
  });
});
