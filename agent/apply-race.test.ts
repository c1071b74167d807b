/**
 * Local writers racing the apply engine on the same keys, with real concurrent transactions.
 * Changes move outbox → in-process relay (a stand-in for the hub in these unit tests only) → apply.
 */
import fc from 'fast-check';
import type pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../test/support/pg.js';
import { ApplyEngine, type ApplyResult } from './apply/engine.js';
import { sqlState } from './db.js';
import { cursorOf, dump, openBranch, Relay, type TestBranch } from './testing/branches.js';

const DDL = `CREATE TABLE public.kv (k int PRIMARY KEY, v int NOT NULL, note text)`;
const TABLES = [{ name: 'public.kv' }];

let dbs: TestDatabase[] = [];
let a: TestBranch;
let b: TestBranch;
let relay: Relay;

beforeAll(async () => {
  dbs = await Promise.all(['a', 'b'].map((l) => createTestDatabase(`race_${l}`)));
  const opened = await Promise.all(dbs.map((d, i) => openBranch(d.url, `b${i + 1}`, DDL, TABLES)));
  [a, b] = opened as [TestBranch, TestBranch];
});

afterAll(async () => {
  await Promise.all([a, b].map((x) => x?.close()));
  await Promise.all(dbs.map((d) => d.drop()));
});

beforeEach(async () => {
  for (const x of [a, b]) {
    await x.pool.query(`SET hubsync.applying = on; DELETE FROM kv; RESET hubsync.applying;
      DELETE FROM hubsync.change_log; DELETE FROM hubsync.row_version; DELETE FROM hubsync.conflicts; DELETE FROM hubsync.dead_letter;
      UPDATE hubsync.apply_state SET "cursor" = 0, clock_floor = 0`);
  }
  relay = new Relay();
});

async function exchange(): Promise<void> {
  await relay.collect(a);
  await relay.collect(b);
  await relay.deliver(a, await cursorOf(a));
  await relay.deliver(b, await cursorOf(b));
}

async function versions(x: TestBranch): Promise<unknown[]> {
  return (await x.pool.query(`SELECT pk, vv, hlc::text, origin, deleted FROM hubsync.row_version ORDER BY pk`)).rows;
}

/** The apply transaction's message (the read before it does not switch capture off). */
const APPLY_MESSAGE = /set_config\('hubsync.applying', 'on', true\)/;

async function deadlocks(x: TestBranch): Promise<number> {
  const { rows } = await x.pool.query<{ n: string }>(`SELECT deadlocks::text AS n FROM pg_stat_database WHERE datname = current_database()`);
  return Number(rows[0]?.n ?? 0);
}

/** An engine that runs `act` once, right before the first statement matching `when`. */
function engineWithInterlude(x: TestBranch, when: RegExp, act: () => Promise<void>): ApplyEngine {
  let done = false;
  return new ApplyEngine(x.pool, x.tables, {
    branchId: x.id,
    maxForwardSkewMs: 300_000,
    hooks: {
      beforeStatement: async (_n, _pid, text) => {
        if (!done && when.test(text)) {
          done = true;
          await act();
        }
      },
    },
  });
}

describe('local writers racing the apply engine', () => {
  it('a local insert of the same key committing between the read and the apply transaction: read again, resolved as a conflict, same winner', async () => {
    await a.pool.query(`INSERT INTO kv VALUES (1, 100, 'from a')`);
    await relay.collect(a);
    const racing = engineWithInterlude(b, APPLY_MESSAGE, async () => {
      await new Promise((r) => setTimeout(r, 2));
      await b.pool.query(`INSERT INTO kv VALUES (1, 200, 'local at b')`);
    });
    const [page] = relay.pages('b2', 0);
    const r = await racing.deliver(page ?? []);
    expect(r.conflicts).toBe(1);
    expect(r.retries.race).toBe(1);
    await exchange();
    expect(await dump(a.pool, 'public.kv', ['k'])).toEqual(['(1,200,"local at b")']);
    expect(await dump(b.pool, 'public.kv', ['k'])).toEqual(['(1,200,"local at b")']);
    expect(await versions(a)).toEqual(await versions(b));
  });

  it('a local insert racing an incoming delete of a key never seen here: the tombstone write retries and resolves', async () => {
    await a.pool.query(`INSERT INTO kv VALUES (2, 1, 'x')`);
    await a.pool.query(`DELETE FROM kv WHERE k = 2`);
    await relay.collect(a);
    const entries = relay.pages('b2', 0).flat();
    // b only gets the delete: it never saw the row, and a local writer inserts the key meanwhile.
    const racing = engineWithInterlude(b, APPLY_MESSAGE, async () => {
      await new Promise((r) => setTimeout(r, 2));
      await b.pool.query(`INSERT INTO kv VALUES (2, 9, 'local')`);
    });
    const r = await racing.deliver(entries.slice(1));
    expect(r.conflicts).toBe(1);
    expect(r.retries.race).toBe(1);
    await relay.collect(b);
    await relay.deliver(a, await cursorOf(a));
    await relay.deliver(b, await cursorOf(b));
    expect(await dump(a.pool, 'public.kv', ['k'])).toEqual(await dump(b.pool, 'public.kv', ['k']));
    expect(await versions(a)).toEqual(await versions(b));
  });

  it('a local insert still open when the apply inserts the same key: the apply waits, finds the key taken, reads again and resolves', async () => {
    await a.pool.query(`INSERT INTO kv VALUES (3, 100, 'from a')`);
    await relay.collect(a);
    const w = await b.pool.connect();
    try {
      await w.query('BEGIN');
      await w.query(`INSERT INTO kv VALUES (3, 300, 'local at b')`);
      // Invisible to the engine's read and check; its INSERT waits on the key, then finds it taken.
      setTimeout(() => void w.query('COMMIT'), 100);
      const r = await b.engine.deliver(relay.pages('b2', 0).flat());
      expect(r).toMatchObject({ conflicts: 1, retries: { race: 1, lock_timeout: 0, deadlock: 0 } });
    } finally {
      w.release();
    }
    await exchange();
    expect(await dump(a.pool, 'public.kv', ['k'])).toEqual(await dump(b.pool, 'public.kv', ['k']));
    expect(await versions(a)).toEqual(await versions(b));
  });

  it('a local transaction holding a row the apply needs while waiting for one the apply holds: the apply gives way before a deadlock, retries, loses nothing', async () => {
    await a.pool.query(`INSERT INTO kv VALUES (1, 0, 'seed'), (2, 0, 'seed')`);
    await exchange();
    const t = await a.pool.connect();
    try {
      await t.query('BEGIN');
      await t.query(`UPDATE kv SET v = 1, note = 'a' WHERE k = 1`);
      await t.query(`UPDATE kv SET v = 1, note = 'a' WHERE k = 2`);
      await t.query('COMMIT');
    } finally {
      t.release();
    }
    await relay.collect(a);

    // A local transaction at b holds row 2 and then wants row 1, which the engine holds.
    const deadlocksBefore = await deadlocks(b);
    const w = await b.pool.connect();
    let local: Promise<unknown> | undefined;
    try {
      await w.query('BEGIN');
      await w.query(`SET LOCAL deadlock_timeout = '5s'`);
      await w.query(`UPDATE kv SET v = 7, note = 'local' WHERE k = 2`);
      let scheduled = false;
      let fired: () => void = () => undefined;
      const hookFired = new Promise<void>((r) => (fired = r));
      const deadlocking = new ApplyEngine(b.pool, b.tables, {
        branchId: 'b2',
        maxForwardSkewMs: 300_000,
        hooks: {
          beforeStatement: (_n, _pid, text) => {
            if (/FOR UPDATE OF b/.test(text) && !scheduled) {
              scheduled = true;
              // By then the engine holds row 1 and waits for row 2: the local transaction asking
              // for row 1 closes the cycle, which the engine's lock timeout (200 ms) breaks.
              setTimeout(() => {
                local = w.query(`UPDATE kv SET v = 8 WHERE k = 1`);
                fired();
              }, 50);
            }
          },
        },
      });
      const applying = deadlocking.deliver(relay.pages('b2', await cursorOf(b)).flat());
      // The engine gives way and rolls back, which lets the local update through.
      await hookFired;
      await local;
      await w.query('COMMIT');
      const r = await applying;
      expect(r.retries.lock_timeout).toBeGreaterThanOrEqual(1);
      expect(r.retries.deadlock).toBe(0);
    } finally {
      w.release();
    }
    expect(await deadlocks(b)).toBe(deadlocksBefore);
    await exchange();
    expect(await dump(b.pool, 'public.kv', ['k'])).toEqual(await dump(a.pool, 'public.kv', ['k']));
    expect(await versions(b)).toEqual(await versions(a));
  }, 30_000);

  it('concurrent local transactions and applies, deadlocks included, lose nothing and converge', async () => {
    const KEYS = 6;
    await a.pool.query(`INSERT INTO kv SELECT g, 0, 'seed' FROM generate_series(1, ${KEYS}) g`);
    await exchange();

    type Op = { kind: 'upd' | 'ins' | 'del'; k: number };
    const opArb = fc.record({ kind: fc.constantFrom<Op['kind']>('upd', 'upd', 'ins', 'del'), k: fc.integer({ min: 1, max: KEYS + 3 }) });
    const txArb = fc.array(opArb, { minLength: 1, maxLength: 4 });
    const [aTxs, ...bWriters] = fc.sample(fc.array(txArb, { minLength: 25, maxLength: 25 }), { numRuns: 4, seed: 42 }) as Op[][][];

    const run = async (pool: pg.Pool, txs: Op[][], who: string): Promise<{ done: number; deadlocks: number }> => {
      let done = 0;
      let deadlocks = 0;
      for (const ops of txs) {
        const c = await pool.connect();
        try {
          await c.query('BEGIN');
          for (const op of ops) {
            // Think time inside the transaction, so locks overlap with the apply engine's.
            await new Promise((r) => setTimeout(r, 1));
            if (op.kind === 'upd') await c.query(`UPDATE kv SET v = v + 1, note = $2 WHERE k = $1`, [op.k, who]);
            else if (op.kind === 'ins') await c.query(`INSERT INTO kv VALUES ($1, 1, $2) ON CONFLICT (k) DO UPDATE SET v = kv.v + 10`, [op.k, who]);
            else await c.query(`DELETE FROM kv WHERE k = $1`, [op.k]);
          }
          await c.query('COMMIT');
          done++;
        } catch (err) {
          await c.query('ROLLBACK');
          // The application's own transaction lost a deadlock against the apply engine: its business, not data loss.
          if (sqlState(err) === '40P01') deadlocks++;
          else throw err;
        } finally {
          c.release();
        }
      }
      return { done, deadlocks };
    };

    // a writes its stream first; b applies it in small pages while three local writers hammer the same keys.
    await run(a.pool, aTxs ?? [], 'a');
    await relay.collect(a);
    const pages = relay.pages('b2', await cursorOf(b), 8);
    const applied: ApplyResult[] = [];
    const slowed = new ApplyEngine(b.pool, b.tables, {
      branchId: 'b2',
      maxForwardSkewMs: 300_000,
      hooks: { beforeStatement: () => new Promise((r) => setTimeout(r, 1)) },
    });
    const applier = (async () => {
      for (const p of pages) applied.push(await slowed.deliver(p));
    })();
    const writers = bWriters.map((txs, i) => run(b.pool, txs, `b${i}`));
    const [, ...stats] = await Promise.all([applier, ...writers]);
    expect(stats.reduce((n, s) => n + s.done, 0)).toBeGreaterThan(0);

    // Every delivered entry was applied, skipped or resolved: the cursor reached the end.
    expect(await cursorOf(b)).toBe(relay.log.length);
    await exchange();
    expect(await dump(b.pool, 'public.kv', ['k'])).toEqual(await dump(a.pool, 'public.kv', ['k']));
    expect(await versions(b)).toEqual(await versions(a));
    expect(await b.outbox.pending()).toBe(0);
  }, 60_000);
});
