/**
 * Convergence: three branches write random inserts, updates, deletes and key changes; batches
 * reach the log in random order, deliveries come in random pages, with redeliveries; at the end
 * every branch holds identical rows and versions. The relay in agent/testing/branches.ts is an
 * in-process stand-in for the hub in these unit tests only.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Change } from '../protocol/messages.js';
import { createTestDatabase, type TestDatabase } from '../test/support/pg.js';
import { cursorOf, dump, openBranch, Relay, type TestBranch } from './testing/branches.js';

const DDL = `CREATE TABLE public.kv (k int PRIMARY KEY, v text, n int)`;
const TABLES = [{ name: 'public.kv' }];
const KEYS = 8;

let dbs: TestDatabase[] = [];
let branches: TestBranch[] = [];
/** Never syncs: receives every change ever logged, in a random order, with duplicates. */
let shuffled: TestBranch;

beforeAll(async () => {
  dbs = await Promise.all(['a', 'b', 'c', 'd'].map((l) => createTestDatabase(`converge_${l}`)));
  const opened = await Promise.all(dbs.map((d, i) => openBranch(d.url, `b${i + 1}`, DDL, TABLES)));
  branches = opened.slice(0, 3);
  shuffled = opened[3] as TestBranch;
}, 60_000);

afterAll(async () => {
  await Promise.all([...branches, shuffled].map((x) => x?.close()));
  await Promise.all(dbs.map((d) => d.drop()));
});

async function reset(): Promise<void> {
  for (const x of [...branches, shuffled]) {
    await x.pool.query(`SET hubsync.applying = on; DELETE FROM kv; RESET hubsync.applying;
      DELETE FROM hubsync.change_log; DELETE FROM hubsync.row_version; DELETE FROM hubsync.conflicts; DELETE FROM hubsync.dead_letter;
      UPDATE hubsync.apply_state SET "cursor" = 0, clock_floor = 0`);
  }
}

type WriteOp =
  | { kind: 'upsert'; k: number; v: string }
  | { kind: 'update'; k: number; v: string }
  | { kind: 'delete'; k: number }
  | { kind: 'rekey'; k: number; to: number };

type Step =
  | { kind: 'write'; branch: number; ops: WriteOp[] }
  | { kind: 'send'; branch: number; batchSize: number }
  | { kind: 'deliver'; branch: number; pageSize: number; rewind: number };

const key = fc.integer({ min: 1, max: KEYS });
const writeOp: fc.Arbitrary<WriteOp> = fc.oneof(
  fc.record({ kind: fc.constant('upsert' as const), k: key, v: fc.string({ maxLength: 6 }) }),
  fc.record({ kind: fc.constant('update' as const), k: key, v: fc.string({ maxLength: 6 }) }),
  fc.record({ kind: fc.constant('delete' as const), k: key }),
  fc.record({ kind: fc.constant('rekey' as const), k: key, to: key }),
);
const branch = fc.integer({ min: 0, max: 2 });
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('write' as const), branch, ops: fc.array(writeOp, { minLength: 1, maxLength: 4 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('send' as const), branch, batchSize: fc.integer({ min: 1, max: 10 }) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('deliver' as const),
      branch,
      pageSize: fc.integer({ min: 1, max: 8 }),
      rewind: fc.integer({ min: 0, max: 6 }),
    }),
  },
);

async function write(x: TestBranch, ops: WriteOp[]): Promise<void> {
  const c = await x.pool.connect();
  try {
    await c.query('BEGIN');
    for (const op of ops) {
      if (op.kind === 'upsert') {
        await c.query(`INSERT INTO kv VALUES ($1, $2, 1) ON CONFLICT (k) DO UPDATE SET v = excluded.v, n = kv.n + 1`, [op.k, op.v]);
      } else if (op.kind === 'update') {
        await c.query(`UPDATE kv SET v = $2, n = n + 1 WHERE k = $1`, [op.k, op.v]);
      } else if (op.kind === 'delete') {
        await c.query(`DELETE FROM kv WHERE k = $1`, [op.k]);
      } else {
        await c.query(`UPDATE kv SET k = $2 WHERE k = $1 AND NOT EXISTS (SELECT 1 FROM kv WHERE k = $2)`, [op.k, op.to]);
      }
    }
    await c.query('COMMIT');
  } finally {
    c.release();
  }
}

async function state(x: TestBranch): Promise<{ rows: string[]; versions: unknown[] }> {
  return {
    rows: await dump(x.pool, 'public.kv', ['k']),
    versions: (await x.pool.query(`SELECT pk, vv, hlc::text AS hlc, origin, deleted FROM hubsync.row_version ORDER BY pk`)).rows,
  };
}

describe('convergence', () => {
  it('three branches end identical whatever the interleaving, paging and redelivery', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 20, maxLength: 60 }), fc.integer(), async (steps, seed) => {
        await reset();
        const relay = new Relay();
        for (const s of steps) {
          const x = branches[s.branch] as TestBranch;
          if (s.kind === 'write') await write(x, s.ops);
          else if (s.kind === 'send') await relay.collect(x, s.batchSize);
          else {
            // The hub redelivers from an older position after a reconnect: applied entries must be skipped.
            const from = Math.max(0, (await cursorOf(x)) - s.rewind);
            const pages = relay.pages(x.id, from, s.pageSize);
            for (const p of pages.slice(0, 1 + (Math.abs(seed) % Math.max(1, pages.length)))) await x.engine.deliver(p);
          }
        }
        for (const x of branches) await relay.collect(x);
        for (const x of branches) await relay.deliver(x, await cursorOf(x));

        const [first, ...rest] = await Promise.all(branches.map(state));
        for (const other of rest) expect(other).toEqual(first);
        for (const x of branches) expect(await x.outbox.pending()).toBe(0);

        // Every change ever logged, in a random order with duplicates, through the same engine: same result.
        const all: Change[] = relay.log.map(([, c]) => c);
        const order = fc.sample(fc.shuffledSubarray(all, { minLength: all.length, maxLength: all.length }), { numRuns: 1, seed })[0] ?? all;
        const dupes = all.filter((_, i) => i % 3 === 0);
        for (let i = 0; i < order.length; i += 5) await shuffled.engine.snapshotChunk(order.slice(i, i + 5));
        await shuffled.engine.snapshotChunk(dupes);
        expect(await state(shuffled)).toEqual(first);
      }),
      { numRuns: 25, seed: 20261127 },
    );
  }, 120_000);
});
