/**
 * Routing through a real hub, one PostgreSQL database per branch: headquarters publishes the
 * catalogue to every store, each store sends its sales to headquarters only, and a customer
 * lives at headquarters and at its own store (`store_id = branch.store_id`). Every branch ends
 * with exactly its subset: after a store was offline, after a row moved between stores, after a
 * bootstrap; a store that tries to send a table it may not is refused and nothing is stored.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeHlc, type Change } from '../../protocol/index.js';
import { TestAgent, tokenFor, wsUrl } from '../../hub/testing/harness.js';
import { publishSchemaChange } from '../../hub/schema/publish.js';
import { readCatalog } from '../../hub/store/catalog.js';
import { tenantSchemaName, type Route } from '../../hub/store/index.js';
import { E2E, metric, type Branch, type Hub } from './support.js';

const DDL = `
  CREATE TABLE public.product (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2) NOT NULL);
  CREATE TABLE public.sale (id text PRIMARY KEY, store_id int NOT NULL, product_id int NOT NULL, qty int NOT NULL);
  CREATE TABLE public.customer (id int PRIMARY KEY, store_id int, name text NOT NULL);
`;
const TABLES = [{ name: 'public.product' }, { name: 'public.sale' }, { name: 'public.customer' }];
const ROUTES: Route[] = [
  { name: 'catalogue', tables: ['public.product'], from: ['hq'], to: ['store'] },
  { name: 'sales', tables: ['public.sale'], from: ['store'], to: ['hq'] },
  { name: 'customers-to-hq', tables: ['public.customer'], from: ['hq', 'store'], to: ['hq'] },
  { name: 'own-customers', tables: ['public.customer'], from: ['hq', 'store'], to: ['store'], filter: 'store_id = branch.store_id' },
];

const e2e = new E2E('routing');
let hub: Hub;
let hq: Branch;
let stores: Branch[];

async function routed(id: string, groups: string[], attributes: Record<string, string> = {}): Promise<Branch> {
  const b = await e2e.branch(hub, 'chain', id, DDL, TABLES);
  await hub.store.setBranchRouting('chain', id, { groups, attributes });
  return b;
}

/** Rows of a table at a branch, in key order, as text. */
const rows = (b: Branch, table: string): Promise<string[]> => b.dump(table, ['id']);

/** Waits until `b` holds exactly `expected` in `table`. */
async function holds(b: Branch, table: string, expected: string[]): Promise<void> {
  await expect.poll(() => rows(b, table), { timeout: 30_000, interval: 200 }).toEqual(expected);
}

beforeAll(async () => {
  // Maintenance (compaction, then route repair) often, so that repairs come within the test's patience.
  hub = await e2e.startHub({ maintenanceIntervalMs: 300 });
  hq = await routed('hq', ['hq']);
  stores = [];
  for (const n of [1, 2, 3]) stores.push(await routed(`s${n}`, ['store'], { store_id: String(n) }));
  await hub.store.updateTenant('chain', { routes: ROUTES });
  await hq.start();
  for (const s of stores) await s.start({ AGENT_CODEC: s.id === 's3' ? 'json' : 'msgpack' });
}, 120_000);

afterAll(() => e2e.close(), 60_000);

describe('routes', { timeout: 120_000 }, () => {
  it('sends the catalogue to every store, each sale to hq only, each customer to hq and its own store', async () => {
    await hq.query(`INSERT INTO product VALUES (1, 'tea', 2.50), (2, 'coffee', 3.10)`);
    for (const [i, s] of stores.entries()) {
      const n = i + 1;
      await s.query(`INSERT INTO sale VALUES ('s${n}-1', ${n}, 1, ${n}), ('s${n}-2', ${n}, 2, 1)`);
      await s.query(`INSERT INTO customer VALUES (${n * 10}, ${n}, 'walk-in at ${n}')`);
    }
    await hq.query(`INSERT INTO customer VALUES (11, 1, 'signed up online for 1'), (21, 2, 'online for 2'), (99, NULL, 'no store')`);

    for (const s of stores) await holds(s, 'public.product', ['(1,tea,2.50)', '(2,coffee,3.10)']);
    await holds(hq, 'public.sale', ['(s1-1,1,1,1)', '(s1-2,1,2,1)', '(s2-1,2,1,2)', '(s2-2,2,2,1)', '(s3-1,3,1,3)', '(s3-2,3,2,1)']);
    await holds(hq, 'public.customer', ['(10,1,"walk-in at 1")', '(11,1,"signed up online for 1")', '(20,2,"walk-in at 2")', '(21,2,"online for 2")', '(30,3,"walk-in at 3")', '(99,,"no store")']);
    await holds(stores[0] as Branch, 'public.customer', ['(10,1,"walk-in at 1")', '(11,1,"signed up online for 1")']);
    await holds(stores[1] as Branch, 'public.customer', ['(20,2,"walk-in at 2")', '(21,2,"online for 2")']);
    await holds(stores[2] as Branch, 'public.customer', ['(30,3,"walk-in at 3")']);
    // A store holds its own sales only: nobody sent it another's.
    for (const [i, s] of stores.entries()) expect(await rows(s, 'public.sale')).toEqual([`(s${i + 1}-1,${i + 1},1,${i + 1})`, `(s${i + 1}-2,${i + 1},2,1)`]);
    expect(await rows(hq, 'public.product')).toEqual(['(1,tea,2.50)', '(2,coffee,3.10)']);
  });

  it('moves a customer from one store to another: the store it left loses it, the new one gets it whole, and so does its writer', async () => {
    const [s1, s2, s3] = stores as [Branch, Branch, Branch];
    await hq.query(`UPDATE customer SET store_id = 2 WHERE id = 11`);
    await holds(s1, 'public.customer', ['(10,1,"walk-in at 1")']);
    await holds(s2, 'public.customer', ['(11,2,"signed up online for 1")', '(20,2,"walk-in at 2")', '(21,2,"online for 2")']);
    // An eviction leaves no tombstone behind: the row lives on elsewhere.
    expect(await s1.query(`SELECT count(*)::int AS n FROM hubsync.row_version WHERE key LIKE 'public.customer %11%'`)).toEqual([{ n: 0 }]);
    // A store hands its own customer to another store: it keeps no copy.
    await s3.query(`UPDATE customer SET store_id = 1, name = 'moved to 1' WHERE id = 30`);
    await holds(s3, 'public.customer', []);
    await holds(s1, 'public.customer', ['(10,1,"walk-in at 1")', '(30,1,"moved to 1")']);
    await holds(hq, 'public.customer', ['(10,1,"walk-in at 1")', '(11,2,"signed up online for 1")', '(20,2,"walk-in at 2")', '(21,2,"online for 2")', '(30,1,"moved to 1")', '(99,,"no store")']);
    // Deleted at hq: gone from the store that held it, and nowhere else was it sent.
    await hq.query(`DELETE FROM customer WHERE id = 21`);
    await holds(s2, 'public.customer', ['(11,2,"signed up online for 1")', '(20,2,"walk-in at 2")']);
  });

  it('brings a store that was offline its own rows only, and takes away what moved off it meanwhile', async () => {
    const s2 = stores[1] as Branch;
    await s2.stop();
    await hq.query(`INSERT INTO customer VALUES (22, 2, 'while 2 was away'), (31, 3, 'for 3')`);
    await hq.query(`UPDATE customer SET store_id = 3 WHERE id = 11`);
    await hq.query(`UPDATE product SET price = 2.75 WHERE id = 1`);
    await holds(stores[2] as Branch, 'public.customer', ['(11,3,"signed up online for 1")', '(31,3,"for 3")']);
    await s2.start();
    await holds(s2, 'public.customer', ['(20,2,"walk-in at 2")', '(22,2,"while 2 was away")']);
    await holds(s2, 'public.product', ['(1,tea,2.75)', '(2,coffee,3.10)']);
  });

  it('bootstraps a new store with exactly the rows it would have received', async () => {
    const s4 = await routed('s4', ['store'], { store_id: '1' });
    await s4.start();
    await holds(s4, 'public.product', ['(1,tea,2.75)', '(2,coffee,3.10)']);
    await holds(s4, 'public.customer', ['(10,1,"walk-in at 1")', '(30,1,"moved to 1")']);
    expect(await rows(s4, 'public.sale')).toEqual([]);
    await s4.stop();
  });

  it('keeps a store from sending a table its group may not send: its agent does not send it, and the hub refuses and audits it', async () => {
    const s1 = stores[0] as Branch;
    // The agent knows from hello that stores do not send the catalogue: the change stays local.
    await s1.query(`UPDATE product SET price = 0.01 WHERE id = 2`);
    await expect.poll(async () => metric((s1.agent as NonNullable<Branch['agent']>).metrics.unsendable, { table: 'public.product' }), { timeout: 10_000 }).toBe(1);
    expect(await s1.pending()).toBe(0);

    // Someone with s1's key speaks the protocol by hand.
    await s1.stop();
    const mallory = await TestAgent.open(wsUrl(hub.app as NonNullable<Hub['app']>), await tokenFor(hub.url, 'chain', 's1', s1.apiKey), { bootstrap: false });
    const before = await hub.store.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM tenant_chain.log');
    const seq = 1_000_000_000;
    const change: Change = {
      table: 'public.product',
      op: 'update',
      pk: { id: '1' },
      row: { id: '1', name: 'tea', price: '0.00' },
      hlc: encodeHlc({ wall: Date.now(), logical: 0 }),
      vv: { s1: seq },
      origin: 's1',
      seq,
      tx: String(seq),
      tx_end: true,
    };
    mallory.send({ type: 'sync.batch', id: 'forbidden-1', batch_id: 'forbidden-1', changes: [change] });
    const err = await mallory.next('error', (e) => e.ref === 'forbidden-1');
    expect(err.code).toBe('forbidden_table');
    expect(err.message).toContain('"public.product"');
    const evict: Change = { ...change, op: 'delete', row: null, evict: true, seq: seq + 1, tx: String(seq + 1) };
    mallory.send({ type: 'sync.batch', id: 'evict-1', batch_id: 'evict-1', changes: [evict] });
    expect((await mallory.next('error', (e) => e.ref === 'evict-1')).message).toContain('evict: set by the hub only');
    mallory.close();
    const after = await hub.store.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM tenant_chain.log');
    expect(after.rows[0]?.n).toBe(before.rows[0]?.n);
    const audit = await hub.store.listAudit({ tenantId: 'chain' });
    expect(audit.filter((a) => a.event === 'route.refused').map((a) => a.detail)).toEqual(
      expect.arrayContaining([expect.objectContaining({ reason: 'forbidden_table', tables: ['public.product'] })]),
    );
    await s1.start();
    await holds(s1, 'public.product', ['(1,tea,2.75)', '(2,coffee,0.01)']);
    for (const s of stores.slice(1)) expect(await rows(s, 'public.product')).toEqual(['(1,tea,2.75)', '(2,coffee,3.10)']);
  });

  it('resyncs a store whose attribute changed: it gets its new subset and loses the old one, in the background', async () => {
    const s3 = stores[2] as Branch;
    const before = await hub.store.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM hub.audit_log WHERE tenant_id = 'chain'`);
    expect(await rows(s3, 'public.customer')).toEqual(['(11,3,"signed up online for 1")', '(31,3,"for 3")']);
    await hub.store.setBranchRouting('chain', 's3', { attributes: { store_id: '2' } });
    await holds(s3, 'public.customer', ['(20,2,"walk-in at 2")', '(22,2,"while 2 was away")']);
    // Its own sales stay: no route sends sales to stores, so none takes them away.
    expect(await rows(s3, 'public.sale')).toEqual(['(s3-1,3,1,3)', '(s3-2,3,2,1)']);
    await expect.poll(async () => metric(hub.app!.ctx.metrics.routingResyncs, { tenant: 'chain' }), { timeout: 10_000 }).toBeGreaterThanOrEqual(1);
    expect(await metric(hub.app!.ctx.metrics.routingEvictions, { tenant: 'chain' })).toBeGreaterThanOrEqual(2);
    expect(before.rows[0]?.n).toBeGreaterThan(0);
    // Live changes follow the new attribute.
    await hq.query(`INSERT INTO customer VALUES (23, 2, 'after the change')`);
    await holds(s3, 'public.customer', ['(20,2,"walk-in at 2")', '(22,2,"while 2 was away")', '(23,2,"after the change")']);
  });

  it('resyncs every store when a route is removed, and again when it is added back', async () => {
    const s1 = stores[0] as Branch;
    await hub.store.updateTenant('chain', { routes: ROUTES.filter((r) => r.name !== 'own-customers') });
    // Stores no longer receive customers: what they held goes, except a store's own writes.
    await holds(stores[1] as Branch, 'public.customer', ['(20,2,"walk-in at 2")']);
    await holds(s1, 'public.customer', ['(10,1,"walk-in at 1")']);
    await holds(stores[2] as Branch, 'public.customer', []);
    await hub.store.updateTenant('chain', { routes: ROUTES });
    await holds(s1, 'public.customer', ['(10,1,"walk-in at 1")', '(30,1,"moved to 1")']);
    await holds(stores[2] as Branch, 'public.customer', ['(20,2,"walk-in at 2")', '(22,2,"while 2 was away")', '(23,2,"after the change")']);
    // Nothing of another store reached hq twice or went missing there.
    expect(await rows(hq, 'public.customer')).toHaveLength(8);
  });

  it('repairs a move that raced with an edit elsewhere: the store the row moved to loses it when the edit wins', async () => {
    const [s1, s2] = stores as [Branch, Branch, Branch];
    const row70 = async (b: Branch) => (await b.query<{ r: string }>(`SELECT c::text AS r FROM customer c WHERE id = 70`)).map((x) => x.r);
    const repairs = () => metric(hub.app!.ctx.metrics.routeRepairs, { tenant: 'chain' });
    const before = await repairs();
    await hq.query(`INSERT INTO customer VALUES (70, 1, 'race')`);
    await expect.poll(() => row70(s1), { timeout: 30_000 }).toEqual(['(70,1,race)']);
    // hq goes offline; s1 hands the customer to store 2 meanwhile, and hq, not having seen that,
    // edits the name later: concurrent writes, hq's (the later) wins, and it says store 1.
    await hq.stop();
    await s1.query(`UPDATE customer SET store_id = 2 WHERE id = 70`);
    await expect.poll(() => row70(s2), { timeout: 30_000 }).toEqual(['(70,2,race)']);
    await expect.poll(() => row70(s1), { timeout: 30_000 }).toEqual([]);
    await new Promise((r) => setTimeout(r, 20));
    await hq.query(`UPDATE customer SET name = 'race, edited at hq' WHERE id = 70`);
    await hq.start();
    await expect.poll(() => row70(hq), { timeout: 30_000 }).toEqual(['(70,1,"race, edited at hq")']);
    await expect.poll(() => row70(s1), { timeout: 30_000 }).toEqual(['(70,1,"race, edited at hq")']);
    // Routed by its own row, hq's edit never reached store 2: route repair takes the row away there.
    await expect.poll(() => row70(s2), { timeout: 30_000 }).toEqual([]);
    expect(await repairs()).toBeGreaterThan(before);
    expect(await row70(stores[2] as Branch)).toEqual([]);
  });

  it('keeps a store the row it edited while offline when its edit wins over a move it had not seen', async () => {
    const [s1, s2] = stores as [Branch, Branch, Branch];
    const row71 = async (b: Branch) => (await b.query<{ r: string }>(`SELECT c::text AS r FROM customer c WHERE id = 71`)).map((x) => x.r);
    await hq.query(`INSERT INTO customer VALUES (71, 1, 'race 2')`);
    await expect.poll(() => row71(s1), { timeout: 30_000 }).toEqual(['(71,1,"race 2")']);
    await s1.stop();
    await hq.query(`UPDATE customer SET store_id = 2 WHERE id = 71`);
    await expect.poll(() => row71(s2), { timeout: 30_000 }).toEqual(['(71,2,"race 2")']);
    await new Promise((r) => setTimeout(r, 20));
    await s1.query(`UPDATE customer SET name = 'race 2, edited at store 1' WHERE id = 71`);
    await s1.start();
    // The eviction of hq's move reaches store 1 after its own, later edit: stale, the copy stays;
    // everyone takes the edit, which says store 1; store 2 loses the moved row by route repair.
    await expect.poll(() => row71(hq), { timeout: 30_000 }).toEqual(['(71,1,"race 2, edited at store 1")']);
    await expect.poll(() => row71(s2), { timeout: 30_000 }).toEqual([]);
    expect(await row71(s1)).toEqual(['(71,1,"race 2, edited at store 1")']);
  });

  it('checks route filters against the tables the branches reported, and keeps a filtered column from being dropped or renamed', async () => {
    // Every agent reported its tables when it connected.
    const catalog = () => readCatalog(hub.store.pool, tenantSchemaName('chain'));
    await expect.poll(async () => (await catalog()).map((t) => t.name)).toEqual(['public.customer', 'public.product', 'public.sale']);
    const customer = (await catalog()).find((t) => t.name === 'public.customer');
    expect(customer?.columns).toEqual([
      { name: 'id', type: 'integer' },
      { name: 'store_id', type: 'integer' },
      { name: 'name', type: 'text' },
    ]);
    expect(customer?.pk).toEqual(['id']);

    const own = (filter: string, tables = ['public.customer']): Route[] => ROUTES.map((r) => (r.name === 'own-customers' ? { ...r, tables, filter } : r));
    await expect(hub.store.updateTenant('chain', { routes: own('stor_id = branch.store_id') })).rejects.toThrow(
      'route "own-customers": public.customer: filter: no column "stor_id"; the table has store_id, id, name',
    );
    await expect(hub.store.updateTenant('chain', { routes: own("store_id = 'north'") })).rejects.toThrow(/public\.customer: filter: column "store_id" is number but is compared with 'north', which is not a number/);
    await expect(hub.store.updateTenant('chain', { routes: own('store_id = branch.store_id', ['public.*']) })).rejects.toThrow(/public\.product: filter: no column "store_id"/);
    // Nothing of it was saved.
    expect((await hub.store.getTenant('chain'))?.routes).toEqual(ROUTES);

    const tenant = await hub.store.getTenant('chain');
    if (!tenant) throw new Error('tenant chain is gone');
    const publish = (sql: string) => publishSchemaChange(hub.store.pool, null, tenant, { sql, name: null, description: null, allowUnknownTables: false, by: 'test' });
    await expect(publish('ALTER TABLE public.customer RENAME COLUMN store_id TO shop_id')).rejects.toThrow(
      'route "own-customers" filters public.customer on column store_id; change the route before dropping or renaming the column',
    );
    await expect(publish('ALTER TABLE public.customer DROP COLUMN store_id')).rejects.toThrow(/route "own-customers" filters public\.customer on column store_id/);
  });
});
