/**
 * Column-level tables and counters through a real hub (issue 15):
 * - a stock level decremented at two stores at once ends right everywhere, and a customer's
 *   phone edited at one store and e-mail at another keeps both edits;
 * - pgbench's own TPC-B script at two branches at once, balances declared additive, with an
 *   agent and the hub killed with SIGKILL in the middle: every branch converges and at each,
 *   sum(abalance) = sum(tbalance) = sum(bbalance) = sum(delta) of every branch's history.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TableConfig } from '../../agent/config.js';
import { loadInstalledTables } from '../../agent/catalog.js';
import { publishExisting } from '../../agent/publish.js';
import { tpcb, TPCB_DDL, TPCB_SCHEMA, TPCB_TABLES } from '../support/tpcb.js';
import { converged, E2E, metric, type AgentProcess, type Branch, type HubProcess } from './support.js';

const SHOP = `
  CREATE TABLE public.product (id int PRIMARY KEY, name text NOT NULL, stock int NOT NULL, price numeric(10,2) NOT NULL);
  CREATE TABLE public.customer (id int PRIMARY KEY, name text NOT NULL, phone text, email text);`;
const SHOP_TABLES: TableConfig[] = [
  { name: 'public.product', additive: ['stock'] },
  { name: 'public.customer', merge: 'column' },
];
const TPCB_ADDITIVE: Record<string, string> = {
  'public.pgbench_accounts': 'abalance',
  'public.pgbench_tellers': 'tbalance',
  'public.pgbench_branches': 'bbalance',
};
const TPCB_COLUMN_TABLES: TableConfig[] = TPCB_TABLES.map((t) => (TPCB_ADDITIVE[t.name] ? { name: t.name, additive: [TPCB_ADDITIVE[t.name] as string] } : { name: t.name }));
const SECONDS = 20;

const e2e = new E2E('merge');
let hub: HubProcess;
const procs = new Map<Branch, AgentProcess>();

async function count(x: Branch, table: string): Promise<number> {
  const [r] = await x.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
  return r?.n ?? 0;
}

function spawnAgent(x: Branch): AgentProcess {
  const p = x.spawn(process.env.E2E_LOG_LEVEL ? {} : { LOG_LEVEL: 'warn' });
  procs.set(x, p);
  return p;
}

beforeAll(async () => {
  hub = await e2e.startHubProcess(undefined, { HUB_DATABASE_POOL_SIZE: '5' });
}, 120_000);

afterAll(async () => {
  for (const p of procs.values()) await p.kill().catch(() => undefined);
  await e2e.close();
}, 60_000);

describe('column-level tables through the hub', { timeout: 240_000 }, () => {
  it('a stock level decremented at two stores at once ends right, and two stores editing a customer keep both edits', async () => {
    const [hq, s1, s2] = [await e2e.branch(hub, 'shop', 'hq', SHOP, SHOP_TABLES), await e2e.branch(hub, 'shop', 's1', SHOP, SHOP_TABLES), await e2e.branch(hub, 'shop', 's2', SHOP, SHOP_TABLES)];
    await hub.store.updateTenant('shop', { tables: [{ name: 'public.product', additive: ['stock'] }, { name: 'public.customer', merge: 'column' }] });
    for (const x of [hq, s1, s2]) await x.start();
    await hq.query(`INSERT INTO product VALUES (1, 'tea', 100, 2.50)`);
    await hq.query(`INSERT INTO customer VALUES (7, 'Ann', '111', 'ann@old')`);
    await converged([hq, s1, s2], [{ name: 'public.product' }, { name: 'public.customer' }]);

    // Both stores offline while they sell and edit: nothing can order their writes.
    await s1.stop();
    await s2.stop();
    for (let i = 0; i < 5; i++) await s1.query(`UPDATE product SET stock = stock - 1 WHERE id = 1`);
    for (let i = 0; i < 3; i++) await s2.query(`UPDATE product SET stock = stock - 2 WHERE id = 1`);
    await hq.query(`UPDATE product SET stock = stock + 20, price = 2.75 WHERE id = 1`);
    await s1.query(`UPDATE customer SET phone = '222' WHERE id = 7`);
    await s2.query(`UPDATE customer SET email = 'ann@new' WHERE id = 7`);
    await s1.start();
    await s2.start();

    const [products, customers] = await converged([hq, s1, s2], [{ name: 'public.product' }, { name: 'public.customer' }]);
    expect(products).toEqual(['(1,tea,109,2.75)']);
    expect(customers).toEqual(['(7,Ann,222,ann@new)']);
    for (const x of [hq, s1, s2]) {
      expect(await x.deadLetters()).toEqual([]);
      expect(await x.conflicts()).toEqual([]);
    }
  });

  it('refuses to sync a branch that merges a table otherwise than the tenant declares', async () => {
    const rogue = await e2e.branch(hub, 'shop', 'rogue', SHOP, [{ name: 'public.product' }, { name: 'public.customer', merge: 'column' }]);
    await rogue.query(`INSERT INTO product VALUES (2, 'sold as a value', 5, 1.00)`);
    const agent = await rogue.start();
    await expect.poll(() => metric(agent.metrics.connects, { result: 'merge_mismatch' }), { timeout: 20_000 }).toBeGreaterThan(0);
    // Nothing went either way.
    expect(await rogue.dump('public.product')).toEqual(['(2,"sold as a value",5,1.00)']);
    expect(await rogue.pending()).toBe(1);
    await rogue.stop();
  });

  it('TPC-B at two branches at once, with an agent and the hub killed: balances equal the deltas everywhere', async () => {
    const a = await e2e.branch(hub, 'bank', 'a', TPCB_DDL, TPCB_COLUMN_TABLES);
    // The bank's first branch publishes what it holds; the others start empty and receive it.
    await publishExisting(a.pool, await loadInstalledTables(a.pool));
    const b = await e2e.branch(hub, 'bank', 'b', TPCB_SCHEMA, TPCB_COLUMN_TABLES);
    const c = await e2e.branch(hub, 'bank', 'c', TPCB_SCHEMA, TPCB_COLUMN_TABLES);
    for (const x of [a, b, c]) spawnAgent(x);
    // Cheap polls first: comparing 100,000 rows at three branches every 200 ms would slow the sync itself.
    await expect.poll(() => Promise.all([b, c].map((x) => count(x, 'pgbench_accounts'))), { timeout: 180_000, interval: 1000 }).toEqual([100_000, 100_000]);
    await converged([a, b, c], TPCB_TABLES, 60_000);

    const runs = Promise.all([a, b].map((x) => tpcb(x.db.url, SECONDS)));
    await new Promise((r) => setTimeout(r, (SECONDS * 1000) / 4));
    await procs.get(b)?.kill();
    spawnAgent(b);
    await new Promise((r) => setTimeout(r, (SECONDS * 1000) / 4));
    const port = hub.port;
    await hub.kill();
    hub = await e2e.startHubProcess(port, { HUB_DATABASE_POOL_SIZE: '5' });
    const processed = (await runs).map((r) => r.transactions);
    expect(processed.every((n) => n > 0)).toBe(true);

    const total = (processed[0] as number) + (processed[1] as number);
    await expect.poll(() => Promise.all([a, b, c].map((x) => count(x, 'pgbench_history'))), { timeout: 180_000, interval: 1000 }).toEqual([total, total, total]);
    const [, , , history] = await converged([a, b, c], TPCB_TABLES, 60_000);
    expect(history?.length).toBe((processed[0] as number) + (processed[1] as number));
    for (const x of [a, b, c]) {
      const [sums] = await x.query<{ a: string; t: string; b: string; d: string }>(
        `SELECT (SELECT sum(abalance) FROM pgbench_accounts)::text AS a, (SELECT sum(tbalance) FROM pgbench_tellers)::text AS t,
                (SELECT sum(bbalance) FROM pgbench_branches)::text AS b, (SELECT coalesce(sum(delta), 0) FROM pgbench_history)::text AS d`,
      );
      expect(sums, `sums at ${x.id}`).toEqual({ a: sums?.d, t: sums?.d, b: sums?.d, d: sums?.d });
      expect(await x.deadLetters()).toEqual([]);
    }
  });
});
