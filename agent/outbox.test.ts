import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ChangeSchema } from '../protocol/messages.js';
import { createTestDatabase, type TestDatabase } from '../test/support/pg.js';
import { install } from './install.js';
import { Outbox, planBatch, type OutboxBatch, type ReadOptions, type TxCount } from './outbox.js';

describe('planBatch', () => {
  const candidates = fc
    .uniqueArray(fc.integer({ min: 1, max: 10_000 }), { minLength: 0, maxLength: 30 })
    .chain((txs) => fc.tuple(...txs.map((tx) => fc.record({ tx: fc.constant(String(tx)), count: fc.integer({ min: 1, max: 400 }) }))));

  it('keeps transactions whole and in order, within the batch size unless one transaction alone is larger', () => {
    fc.assert(
      fc.property(candidates, fc.integer({ min: 1, max: 200 }), fc.integer({ min: 1, max: 300 }), (txs: TxCount[], size, max) => {
        const plan = planBatch(txs, size, max);
        expect(plan.length > 0).toBe(txs.length > 0);
        // A prefix of the candidates, in order.
        plan.forEach((p, i) => expect(p.tx).toBe(txs[i]?.tx));
        const total = plan.reduce((n, p) => n + p.take, 0);
        // Over the batch size only when one transaction goes alone (whole, or a part of the hub's maximum).
        if (total > Math.min(size, max)) expect(plan).toHaveLength(1);
        expect(total).toBeLessThanOrEqual(max);
        for (const [i, p] of plan.entries()) {
          const whole = txs[i]?.count ?? 0;
          if (p.end) expect(p.take).toBe(whole);
          else {
            // Only a transaction larger than the hub takes is split, and it goes alone.
            expect(plan).toHaveLength(1);
            expect(whole).toBeGreaterThan(max);
            expect(p.take).toBe(max);
          }
        }
        // Nothing that fits is left out: the next candidate would overflow the batch.
        const next = txs[plan.length];
        if (next && plan.every((p) => p.end)) expect(total + next.count).toBeGreaterThan(Math.min(size, max));
      }),
    );
  });
});

describe('Outbox', () => {
  let db: TestDatabase;
  let pool: pg.Pool;
  let outbox: Outbox;

  beforeAll(async () => {
    db = await createTestDatabase('outbox');
    pool = new pg.Pool({ connectionString: db.url, max: 6 });
    await pool.query(`CREATE TABLE public.t (id int PRIMARY KEY, v text); CREATE TABLE public.other (id int PRIMARY KEY)`);
    await install(pool, { tenantId: 'acme', branchId: 'b1', tables: [{ name: 'public.t' }] });
    outbox = new Outbox(pool, 'b1');
  });

  afterAll(async () => {
    await pool.end();
    await db.drop();
  });

  beforeEach(async () => {
    await pool.query(`SET hubsync.applying = on; DELETE FROM public.t; RESET hubsync.applying;
                      DELETE FROM hubsync.change_log; DELETE FROM hubsync.row_version`);
  });

  const next = (options: ReadOptions): Promise<OutboxBatch | null> => outbox.next(options);

  async function tx(sql: string): Promise<void> {
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      await c.query(sql);
      await c.query('COMMIT');
    } finally {
      c.release();
    }
  }

  it('tells what a row held before: the changed columns of an update, the whole row of a delete', async () => {
    await pool.query(`ALTER TABLE public.t ADD COLUMN IF NOT EXISTS w text`);
    await install(pool, { tenantId: 'acme', branchId: 'b1', tables: [{ name: 'public.t' }] });
    await tx(`INSERT INTO t VALUES (1, 'a', 'x')`);
    await tx(`UPDATE t SET v = 'b' WHERE id = 1`);
    await tx(`UPDATE t SET w = NULL WHERE id = 1`);
    await tx(`DELETE FROM t WHERE id = 1`);
    const b = await next({ batchSize: 100, maxPerBatch: 1000 });
    const [ins, up1, up2, del] = b?.changes ?? [];
    expect(ins?.old).toBeUndefined();
    expect(up1).toMatchObject({ op: 'update', row: { id: '1', v: 'b', w: 'x' }, old: { v: 'a' } });
    expect(up2).toMatchObject({ op: 'update', row: { id: '1', v: 'b', w: null }, old: { w: 'x' } });
    expect(del).toMatchObject({ op: 'delete', row: null, old: { id: '1', v: 'b', w: null } });
    await pool.query(`ALTER TABLE public.t DROP COLUMN w`);
    await install(pool, { tenantId: 'acme', branchId: 'b1', tables: [{ name: 'public.t' }] });
  });

  it('drops, unsent, the changes of tables the routes do not let this branch send', async () => {
    const dropped: [string, number][] = [];
    const routed = new Outbox(pool, 'b1');
    routed.sendable = (t) => t !== 'public.t';
    routed.onUnsendable = (t, n) => dropped.push([t, n]);
    await tx(`INSERT INTO t VALUES (1, 'a'), (2, 'b')`);
    expect(await routed.next({ batchSize: 100, maxPerBatch: 1000 })).toBeNull();
    expect(dropped).toEqual([['public.t', 2]]);
    expect(await routed.pending()).toBe(0);
  });

  it('turns captured rows into protocol changes', async () => {
    await tx(`INSERT INTO t VALUES (1, 'a')`);
    await tx(`DELETE FROM t WHERE id = 1`);
    const b = await next({ batchSize: 100, maxPerBatch: 1000 });
    expect(b?.changes).toHaveLength(2);
    for (const c of b?.changes ?? []) expect(ChangeSchema.safeParse(c).success).toBe(true);
    const [ins, del] = b?.changes ?? [];
    expect(ins).toMatchObject({ table: 'public.t', op: 'insert', pk: { id: '1' }, row: { id: '1', v: 'a' }, vv: { b1: 1 }, origin: 'b1', tx_end: true });
    expect(del).toMatchObject({ op: 'delete', row: null, vv: { b1: 2 }, tx_end: true });
    expect(ins?.hlc).toMatch(/^[0-9a-f]{16}$/);
    expect(parseInt(ins?.hlc.slice(0, 12) ?? '', 16)).toBeGreaterThan(Date.now() - 60_000);
    expect(typeof ins?.seq).toBe('number');
    expect(ins?.tx).not.toBe(del?.tx);
  });

  it('packs whole transactions, marks the end of each, and never exceeds the batch size to do so', async () => {
    await tx(`INSERT INTO t SELECT g, 'a' FROM generate_series(1, 3) g`);
    await tx(`INSERT INTO t SELECT g, 'b' FROM generate_series(4, 6) g`);
    await tx(`INSERT INTO t SELECT g, 'c' FROM generate_series(7, 8) g`);
    const b1 = await next({ batchSize: 7, maxPerBatch: 1000 });
    expect(b1?.changes.map((c) => c.row?.v)).toEqual(['a', 'a', 'a', 'b', 'b', 'b']);
    expect(b1?.changes.map((c) => c.tx_end === true)).toEqual([false, false, true, false, false, true]);
    // The batch size left 'c' out: the sender may pipeline this batch.
    expect(b1?.more).toBe(true);
    await outbox.acknowledge(b1?.seqs ?? []);
    const b2 = await next({ batchSize: 7, maxPerBatch: 1000 });
    expect(b2?.changes.map((c) => c.row?.v)).toEqual(['c', 'c']);
    expect(b2?.more).toBe(false);
    await outbox.acknowledge(b2?.seqs ?? []);
    expect(await next({ batchSize: 7, maxPerBatch: 1000 })).toBeNull();
    expect(await outbox.pending()).toBe(0);
  });

  it('sends a transaction larger than the batch size whole when the hub takes it, else in parts', async () => {
    await tx(`INSERT INTO t SELECT g, 'big' FROM generate_series(1, 25) g`);
    const whole = await next({ batchSize: 10, maxPerBatch: 30 });
    expect(whole?.changes).toHaveLength(25);
    expect(whole?.more).toBe(false);
    const parts: boolean[][] = [];
    const exclude: string[] = [];
    for (;;) {
      const b = await next({ batchSize: 10, maxPerBatch: 10, exclude });
      if (!b) break;
      parts.push(b.changes.map((c) => c.tx_end === true));
      expect(b.more).toBe(parts.length < 3);
      exclude.push(...b.seqs);
    }
    expect(parts.map((p) => p.length)).toEqual([10, 10, 5]);
    expect(parts.flat().filter(Boolean)).toHaveLength(1);
    expect(parts[2]?.[4]).toBe(true);
  });

  it('keeps interleaved concurrent transactions apart in a batch', async () => {
    const a = await pool.connect();
    const b = await pool.connect();
    try {
      await a.query('BEGIN');
      await b.query('BEGIN');
      await a.query(`INSERT INTO t VALUES (1, 'a')`);
      await b.query(`INSERT INTO t VALUES (2, 'b')`);
      await a.query(`INSERT INTO t VALUES (3, 'a')`);
      await b.query(`INSERT INTO t VALUES (4, 'b')`);
      await a.query('COMMIT');
      await b.query('COMMIT');
    } finally {
      a.release();
      b.release();
    }
    const batch = await next({ batchSize: 100, maxPerBatch: 1000 });
    expect(batch?.changes.map((c) => c.row?.v)).toEqual(['a', 'a', 'b', 'b']);
    expect(batch?.changes.map((c) => c.tx_end === true)).toEqual([false, true, false, true]);
  });

  it('sends what is committed while another writer (here or anywhere on the server) keeps a transaction open', async () => {
    const t1 = await pool.connect();
    try {
      await t1.query('BEGIN');
      await t1.query(`INSERT INTO t VALUES (1, 'T1')`);
      await tx(`INSERT INTO t VALUES (2, 'T2')`);
      const b = await next({ batchSize: 100, maxPerBatch: 1000 });
      expect(b?.changes.map((c) => c.row?.v)).toEqual(['T2']);
      await outbox.acknowledge(b?.seqs ?? []);
      await t1.query('COMMIT');
    } finally {
      t1.release();
    }
    // The open transaction's change, with the lower seq, follows once it commits.
    const late = await next({ batchSize: 100, maxPerBatch: 1000 });
    expect(late?.changes.map((c) => c.row?.v)).toEqual(['T1']);
  });

  it('still sends a transaction that took an earlier seq and committed after a later one was sent', async () => {
    const t2 = await pool.connect();
    const t1 = await pool.connect();
    let t2seq = 0;
    try {
      // T2 gets the older transaction id, T1 the newer one; T1 then captures first (seq 1).
      await t2.query('BEGIN');
      await t2.query(`INSERT INTO other VALUES (1)`);
      await t1.query('BEGIN');
      await t1.query(`INSERT INTO t VALUES (1, 'T1')`);
      await t2.query(`INSERT INTO t VALUES (2, 'T2')`);
      await t2.query('COMMIT');

      const first = await next({ batchSize: 100, maxPerBatch: 1000 });
      expect(first?.changes.map((c) => c.row?.v)).toEqual(['T2']);
      t2seq = first?.changes[0]?.seq ?? 0;
      await outbox.acknowledge(first?.seqs ?? []);

      await t1.query('COMMIT');
    } finally {
      t1.release();
      t2.release();
    }
    const late = await next({ batchSize: 100, maxPerBatch: 1000 });
    expect(late?.changes.map((c) => c.row?.v)).toEqual(['T1']);
    expect(late?.changes[0]?.seq).toBeLessThan(t2seq);
  });

  it('skips rows in flight and resends them when asked again without the exclusion', async () => {
    await tx(`INSERT INTO t VALUES (1, 'x')`);
    await tx(`INSERT INTO t VALUES (2, 'y')`);
    const first = await next({ batchSize: 1, maxPerBatch: 1000 });
    const second = await next({ batchSize: 1, maxPerBatch: 1000, exclude: first?.seqs });
    expect([first?.changes[0]?.row?.v, second?.changes[0]?.row?.v]).toEqual(['x', 'y']);
    // After a reconnect nothing is in flight: the unacknowledged rows come again, in order.
    const again = await next({ batchSize: 5, maxPerBatch: 1000 });
    expect(again?.changes.map((c) => c.row?.v)).toEqual(['x', 'y']);
  });
});
