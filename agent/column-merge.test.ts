/**
 * Column-level tables and counters at real branches (capture trigger, outbox, apply engine; the
 * in-process relay of agent/testing/branches.ts stands in for the hub, as in converge.test.ts):
 * concurrent edits of different columns both survive, concurrent decrements of a counter add
 * up, and random histories end identical at every branch with every increment counted.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Change } from '../protocol/messages.js';
import { createTestDatabase, type TestDatabase } from '../test/support/pg.js';
import { cursorOf, dump, openBranch, Relay, type TestBranch } from './testing/branches.js';

const DDL = `CREATE TABLE public.customer (id int PRIMARY KEY, phone text, email text, stock int NOT NULL DEFAULT 0, price numeric(10,2))`;
const TABLES = [{ name: 'public.customer', merge: 'column' as const, additive: ['stock', 'price'] }];

let dbs: TestDatabase[] = [];
let branches: TestBranch[] = [];
let late: TestBranch;

beforeAll(async () => {
  dbs = await Promise.all(['a', 'b', 'c', 'd'].map((l) => createTestDatabase(`colmerge_${l}`)));
  const opened = await Promise.all(dbs.map((d, i) => openBranch(d.url, `b${i + 1}`, DDL, TABLES)));
  branches = opened.slice(0, 3);
  late = opened[3] as TestBranch;
}, 60_000);

afterAll(async () => {
  await Promise.all([...branches, late].map((x) => x?.close()));
  await Promise.all(dbs.map((d) => d.drop()));
});

async function reset(): Promise<void> {
  for (const x of [...branches, late]) {
    await x.pool.query(`SET hubsync.applying = on; DELETE FROM customer; RESET hubsync.applying;
      DELETE FROM hubsync.change_log; DELETE FROM hubsync.row_version; DELETE FROM hubsync.conflicts; DELETE FROM hubsync.dead_letter;
      UPDATE hubsync.apply_state SET "cursor" = 0, clock_floor = 0`);
  }
}

async function syncAll(relay: Relay): Promise<void> {
  for (const x of branches) await relay.collect(x);
  for (const x of branches) await relay.deliver(x, await cursorOf(x));
}

const [a, b, c] = [0, 1, 2];
const at = (i: number): TestBranch => branches[i] as TestBranch;

describe('column-level tables', () => {
  it('keep both of two concurrent edits of different columns, and name none as a conflict', async () => {
    await reset();
    const relay = new Relay();
    await at(a).pool.query(`INSERT INTO customer (id, phone, email) VALUES (1, '111', 'old@x')`);
    await syncAll(relay);
    await at(a).pool.query(`UPDATE customer SET phone = '222' WHERE id = 1`);
    await at(b).pool.query(`UPDATE customer SET email = 'new@x' WHERE id = 1`);
    await syncAll(relay);
    for (const x of branches) {
      expect((await x.pool.query(`SELECT phone, email FROM customer WHERE id = 1`)).rows).toEqual([{ phone: '222', email: 'new@x' }]);
      expect((await x.pool.query(`SELECT count(*)::int AS n FROM hubsync.conflicts`)).rows[0].n).toBe(0);
    }
  });

  it('record a conflict naming the column both sides wrote, the later write standing', async () => {
    await reset();
    const relay = new Relay();
    await at(a).pool.query(`INSERT INTO customer (id, phone, email) VALUES (1, '111', 'old@x')`);
    await syncAll(relay);
    await at(a).pool.query(`UPDATE customer SET phone = '222', email = 'a@x' WHERE id = 1`);
    await new Promise((r) => setTimeout(r, 5));
    await at(b).pool.query(`UPDATE customer SET phone = '333' WHERE id = 1`);
    await syncAll(relay);
    for (const x of branches) {
      expect((await x.pool.query(`SELECT phone, email FROM customer WHERE id = 1`)).rows).toEqual([{ phone: '333', email: 'a@x' }]);
    }
    const { rows } = await at(b).pool.query(`SELECT winner, columns FROM hubsync.conflicts`);
    expect(rows).toEqual([{ winner: 'local', columns: { conflicted: ['phone'], merged: ['email'] } }]);
  });

  it('add up concurrent decrements of a counter at every branch', async () => {
    await reset();
    const relay = new Relay();
    await at(a).pool.query(`INSERT INTO customer (id, stock, price) VALUES (1, 10, 1.50)`);
    await syncAll(relay);
    await at(a).pool.query(`UPDATE customer SET stock = stock - 1 WHERE id = 1`);
    await at(b).pool.query(`UPDATE customer SET stock = stock - 1, price = price + 0.25 WHERE id = 1`);
    await at(c).pool.query(`UPDATE customer SET stock = stock - 3 WHERE id = 1`);
    await at(c).pool.query(`UPDATE customer SET stock = stock + 1, price = price - 1 WHERE id = 1`);
    await syncAll(relay);
    for (const x of branches) {
      expect((await x.pool.query(`SELECT stock, price::text FROM customer WHERE id = 1`)).rows).toEqual([{ stock: 6, price: '0.75' }]);
    }
  });

  it('under branch-priority, the higher-ranked branch wins a column both wrote, and other columns still merge', async () => {
    await reset();
    const priority = { conflict_strategy: 'branch-priority' as const, branch_priority: ['b1'] };
    for (const x of branches) await x.engine.setPolicy(priority);
    try {
      const relay = new Relay();
      await at(b).pool.query(`INSERT INTO customer (id, phone, email) VALUES (1, '111', 'old@x')`);
      await syncAll(relay);
      await at(a).pool.query(`UPDATE customer SET phone = 'from b1' WHERE id = 1`);
      await new Promise((r) => setTimeout(r, 5));
      // Later, but from a branch that ranks below b1.
      await at(c).pool.query(`UPDATE customer SET phone = 'from b3', email = 'b3@x' WHERE id = 1`);
      await syncAll(relay);
      for (const x of branches) {
        expect((await x.pool.query(`SELECT phone, email FROM customer WHERE id = 1`)).rows).toEqual([{ phone: 'from b1', email: 'b3@x' }]);
      }
      // b3 writes the phone again after seeing b1's: it builds on b1's write, so it stands.
      await at(c).pool.query(`UPDATE customer SET phone = 'b3 again' WHERE id = 1`);
      await syncAll(relay);
      for (const x of branches) expect((await x.pool.query(`SELECT phone FROM customer WHERE id = 1`)).rows).toEqual([{ phone: 'b3 again' }]);
    } finally {
      for (const x of branches) await x.engine.setPolicy({ conflict_strategy: 'last-write-wins', branch_priority: [] });
    }
  });

  type Op = { kind: 'phone' | 'email'; id: number; v: string } | { kind: 'add'; id: number; d: number } | { kind: 'delete'; id: number } | { kind: 'upsert'; id: number };
  const id = fc.integer({ min: 1, max: 3 });
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 2, arbitrary: fc.record({ kind: fc.constantFrom('phone' as const, 'email' as const), id, v: fc.string({ maxLength: 4 }) }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('add' as const), id, d: fc.integer({ min: -3, max: 3 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), id }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('upsert' as const), id }) },
  );
  type Step = { kind: 'write'; branch: number; ops: Op[] } | { kind: 'send'; branch: number } | { kind: 'deliver'; branch: number; rewind: number };
  const branch = fc.integer({ min: 0, max: 2 });
  const step: fc.Arbitrary<Step> = fc.oneof(
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('write' as const), branch, ops: fc.array(op, { minLength: 1, maxLength: 3 }) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('send' as const), branch }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('deliver' as const), branch, rewind: fc.integer({ min: 0, max: 4 }) }) },
  );

  async function write(x: TestBranch, ops: Op[]): Promise<void> {
    for (const o of ops) {
      if (o.kind === 'phone' || o.kind === 'email') await x.pool.query(`UPDATE customer SET ${o.kind} = $2 WHERE id = $1`, [o.id, o.v]);
      else if (o.kind === 'add') await x.pool.query(`UPDATE customer SET stock = stock + $2 WHERE id = $1`, [o.id, o.d]);
      else if (o.kind === 'delete') await x.pool.query(`DELETE FROM customer WHERE id = $1`, [o.id]);
      else await x.pool.query(`INSERT INTO customer (id, stock) VALUES ($1, 100) ON CONFLICT (id) DO NOTHING`, [o.id]);
    }
  }

  const state = async (x: TestBranch): Promise<{ rows: string[]; versions: unknown[] }> => ({
    rows: await dump(x.pool, 'public.customer', ['id']),
    versions: (await x.pool.query(`SELECT pk, vv, hlc::text AS hlc, origin, deleted, cols FROM hubsync.row_version ORDER BY pk`)).rows,
  });

  it('end identical at every branch whatever the interleaving, with every increment on a row counted', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 15, maxLength: 45 }), async (steps) => {
        await reset();
        const relay = new Relay();
        // Rows that are never deleted: their stock must be 100 plus every increment made anywhere.
        for (const x of [at(a)]) await x.pool.query(`INSERT INTO customer (id, stock) VALUES (10, 100), (11, 100)`);
        await syncAll(relay);
        let expected10 = 100;
        for (const s of steps) {
          const x = at(s.branch);
          if (s.kind === 'write') {
            await write(x, s.ops);
            for (const o of s.ops) if (o.kind === 'add' && o.id === 1) await x.pool.query(`UPDATE customer SET stock = stock + $1 WHERE id = 10`, [o.d]).then(() => (expected10 += o.d));
          } else if (s.kind === 'send') await relay.collect(x);
          else {
            const from = Math.max(0, (await cursorOf(x)) - s.rewind);
            for (const p of relay.pages(x.id, from, 4).slice(0, 2)) await x.engine.deliver(p);
          }
        }
        await syncAll(relay);
        const [first, ...rest] = await Promise.all(branches.map(state));
        for (const other of rest) expect(other).toEqual(first);
        const { rows } = await at(a).pool.query<{ stock: number }>(`SELECT stock FROM customer WHERE id = 10`);
        expect(rows[0]?.stock).toBe(expected10);
        // A branch that gets every change at once, out of order and twice, ends the same.
        const all: Change[] = relay.log.map(([, ch]) => ch).reverse();
        await late.engine.snapshotChunk(all);
        await late.engine.snapshotChunk(all.slice(0, Math.ceil(all.length / 2)));
        expect((await state(late)).rows).toEqual(first?.rows);
      }),
      { numRuns: 15, seed: 20261203 },
    );
  }, 180_000);
});
