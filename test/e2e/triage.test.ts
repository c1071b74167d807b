/**
 * Dead letters and conflicts through the hub's admin API (docs/api.md "Dead letters and
 * conflicts"), with two hub instances on one Redis: the API call may land on the instance that
 * does not hold the branch's socket. The branch's agent answers from its own database.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run as runAdmin } from '../../cli/commands/admin.js';
import { testRedisUrl, useRedisPrefix } from '../support/redis.js';
import { converged, E2E, type Branch, type Hub } from './support.js';

const ADMIN = 'triage-admin-token-4c1d8e7b2a';
const DDL = `CREATE TABLE public.customer (id int PRIMARY KEY, email text UNIQUE, name text)`;
const TABLES = [{ name: 'public.customer' }];

const e2e = new E2E('triage');
const prefix = useRedisPrefix('triage');
let hubs: Hub[];
let a: Branch;
let b: Branch;

interface Answer {
  readonly status: number;
  // Bodies are whatever the API answers; tests look into them.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly body: any;
}

async function api(hub: Hub, method: string, path: string): Promise<Answer> {
  const res = await fetch(`${hub.url}${path}`, { method, headers: { authorization: `Bearer ${ADMIN}` } });
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) };
}

beforeAll(async () => {
  hubs = [];
  for (const id of ['triage-1', 'triage-2']) hubs.push(await e2e.startHub({ redisUrl: testRedisUrl, redisPrefix: prefix, instanceId: id, adminToken: ADMIN }));
  const [h1, h2] = hubs as [Hub, Hub];
  a = await e2e.branch(h1, 'shop', 'a', DDL, TABLES);
  b = await e2e.branch(h2, 'shop', 'b', DDL, TABLES);
  await a.start();
  await b.start();
}, 120_000);

afterAll(() => e2e.close(), 60_000);

describe('dead letters and conflicts through the admin API', { timeout: 120_000 }, () => {
  it('lists, shows and retries a dead letter once its cause is fixed, from either hub instance', async () => {
    const [h1, h2] = hubs as [Hub, Hub];
    await b.query(`INSERT INTO customer VALUES (2, 'ann@x', 'Ann at b')`);
    await a.query(`INSERT INTO customer VALUES (1, 'ann@x', 'Ann at a')`);
    await expect.poll(async () => (await b.deadLetters()).length, { timeout: 30_000 }).toBe(1);

    // b's socket is on the second instance; ask the first.
    const list = await api(h1, 'GET', '/admin/tenants/shop/branches/b/dead-letters');
    expect(list.status).toBe(200);
    expect(list.body.result).toHaveLength(1);
    const [dead] = list.body.result;
    expect(dead).toMatchObject({ table: 'public.customer', origin: 'a', pk: { id: '1' } });
    expect(dead.reason).toContain('unique');

    const show = await api(h2, 'GET', `/admin/tenants/shop/branches/b/dead-letters/${dead.id}`);
    expect(show.body.result.change.row).toMatchObject({ id: '1', email: 'ann@x' });

    // Before the cause is fixed: it fails again, and says why.
    const again = await api(h1, 'POST', `/admin/tenants/shop/branches/b/dead-letters/${dead.id}/retry`);
    expect(again.status).toBe(409);
    expect(again.body.error.message).toContain('failed again');

    await b.query(`UPDATE customer SET email = 'ann@b' WHERE id = 2`);
    const [current] = (await api(h1, 'GET', '/admin/tenants/shop/branches/b/dead-letters')).body.result;
    const retried = await api(h1, 'POST', `/admin/tenants/shop/branches/b/dead-letters/${current.id}/retry`);
    expect(retried.status).toBe(200);
    expect(retried.body.message).toBe('applied and removed');
    expect(await b.deadLetters()).toEqual([]);
    await converged([a, b], [{ name: 'public.customer' }]);

    const audit = await hubs[0]?.store.listAudit({ tenantId: 'shop', event: 'dead_letter.retry' });
    expect(audit?.map((e) => e.detail?.status)).toEqual(['ok', 'failed']);
  });

  it('overrides a conflict so that the losing version wins everywhere', async () => {
    const [h1] = hubs as [Hub, Hub];
    await a.query(`INSERT INTO customer VALUES (10, 'c@x', 'first')`);
    await converged([a, b], [{ name: 'public.customer' }]);
    await a.stop();
    await b.stop();
    await a.query(`UPDATE customer SET name = 'edited at a' WHERE id = 10`);
    await new Promise((r) => setTimeout(r, 5));
    await b.query(`UPDATE customer SET name = 'edited at b' WHERE id = 10`);
    await a.start();
    await b.start();
    await converged([a, b], [{ name: 'public.customer' }]);
    expect(await a.dump('public.customer')).toContain('(10,c@x,"edited at b")');

    const conflicts = await api(h1, 'GET', '/admin/tenants/shop/branches/a/conflicts');
    const c = conflicts.body.result.find((x: { pk: { id: string } }) => x.pk.id === '10');
    expect(c).toMatchObject({ winner: 'incoming', localRow: { name: 'edited at a' }, incomingRow: { name: 'edited at b' } });
    const overridden = await api(h1, 'POST', `/admin/tenants/shop/branches/a/conflicts/${c.id}/override`);
    expect(overridden.status).toBe(200);
    await expect.poll(() => b.dump('public.customer'), { timeout: 30_000 }).toContain('(10,c@x,"edited at a")');
    expect((await api(h1, 'POST', `/admin/tenants/shop/branches/a/conflicts/${c.id}/override`)).status).toBe(404);
  });

  it('hub-broker admin dead-letters and conflicts show the same', async () => {
    const [h1] = hubs as [Hub, Hub];
    const admin = async (...args: string[]): Promise<{ code: number; out: string; err: string }> => {
      let out = '';
      let err = '';
      const code = await runAdmin(args, { out: (t) => (out += t), err: (t) => (err += t), env: { HUB_URL: h1.url, HUB_ADMIN_TOKEN: ADMIN } });
      return { code, out, err };
    };
    expect(await admin('dead-letters', 'list', 'shop', 'b')).toMatchObject({ code: 0, out: '(no dead letters)\n' });
    const conflicts = await admin('conflicts', 'list', 'shop', 'a');
    expect(conflicts.code, conflicts.err).toBe(0);
    expect(conflicts.out).toMatch(/^ID +DETECTED +TABLE +KEY +WINNER/m);
    expect(conflicts.out).toMatch(/public\.customer +id=10 +incoming \(last-write-wins\) +- +20\d\d-/);
    const missing = await admin('dead-letters', 'retry', 'shop', 'b', '999');
    expect(missing.code).not.toBe(0);
    expect(missing.err).toContain('no dead letter 999 here');
  });

  it('says so when the branch is not connected, unknown, or the id is not one', async () => {
    const [h1] = hubs as [Hub, Hub];
    await b.stop();
    const offline = await api(h1, 'GET', '/admin/tenants/shop/branches/b/dead-letters');
    expect(offline.status).toBe(409);
    expect(offline.body.error.code).toBe('branch_not_connected');
    expect((await api(h1, 'GET', '/admin/tenants/shop/branches/nope/dead-letters')).status).toBe(404);
    expect((await api(h1, 'GET', '/admin/tenants/shop/branches/a/dead-letters/12x')).status).toBe(400);
    expect((await api(h1, 'GET', '/admin/tenants/shop/branches/a/dead-letters/999')).status).toBe(404);
    await b.start();
  });
});
