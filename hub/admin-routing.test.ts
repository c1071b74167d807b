import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../test/support/pg.js';
import type { HubApp } from './app.js';
import { startTestHub } from './testing/harness.js';

const ADMIN = 'admin-routing-token-3b8e61d0c4';

interface Answer {
  readonly status: number;
  // Bodies are whatever the API answers; tests look into them.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly body: any;
}

/** A branch's routing fields, to compare whole (toMatchObject would let extra attributes pass). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const routing = (b: any) => ({ groups: b.groups, attributes: b.attributes });

const ORDERS = { name: 'orders-home', tables: ['public.orders'], from: ['stores'], to: ['hq'], filter: 'region = branch.region' };
const CATALOG = { name: 'catalog', tables: ['catalog.*'], from: ['hq'], to: ['*'] };

describe('admin API: branch groups and attributes, tenant routes', () => {
  const db = useTestDatabase('admin-routing');
  let app: HubApp;

  const api = async (method: string, path: string, body?: unknown): Promise<Answer> => {
    const res = await fetch(`${app.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: text === '' ? undefined : JSON.parse(text) };
  };
  const refused = async (method: string, path: string, body: unknown, message: string) => {
    const r = await api(method, path, body);
    expect(r.status, JSON.stringify(body)).toBe(400);
    expect(r.body.error.code).toBe('invalid_request');
    expect(r.body.error.message).toContain(message);
  };

  beforeAll(async () => {
    app = await startTestHub(db.url, { adminToken: ADMIN });
    expect((await api('POST', '/admin/tenants', { id: 'acme' })).status).toBe(201);
  });
  afterAll(() => app.stop());

  describe('branches', () => {
    it('creates a branch with groups and attributes; show and list carry them', async () => {
      const created = await api('POST', '/admin/tenants/acme/branches', { id: 'store-1', groups: ['stores', 'eu'], attributes: { region: 'eu-west', tier: 'gold' } });
      expect(created.status).toBe(201);
      // Groups come back sorted and without repeats, as the hub keeps them.
      expect(created.body.id).toBe('store-1');
      expect(routing(created.body)).toEqual({ groups: ['eu', 'stores'], attributes: { region: 'eu-west', tier: 'gold' } });

      const plain = await api('POST', '/admin/tenants/acme/branches', { id: 'hq' });
      expect(routing(plain.body)).toEqual({ groups: [], attributes: {} });

      expect(routing((await api('GET', '/admin/tenants/acme/branches/store-1')).body)).toEqual({ groups: ['eu', 'stores'], attributes: { region: 'eu-west', tier: 'gold' } });
      const list = await api('GET', '/admin/tenants/acme/branches');
      expect(list.body.branches.map((b: { id: string; groups: string[]; attributes: object }) => [b.id, b.groups, b.attributes])).toEqual([
        ['hq', [], {}],
        ['store-1', ['eu', 'stores'], { region: 'eu-west', tier: 'gold' }],
      ]);
    });

    it('PATCH replaces the fields given and keeps the others', async () => {
      const groups = await api('PATCH', '/admin/tenants/acme/branches/hq', { groups: ['hq', 'hq'] });
      expect(groups.status).toBe(200);
      expect(routing(groups.body)).toEqual({ groups: ['hq'], attributes: {} });

      const attrs = await api('PATCH', '/admin/tenants/acme/branches/hq', { attributes: { region: 'eu-west' } });
      expect(routing(attrs.body)).toEqual({ groups: ['hq'], attributes: { region: 'eu-west' } });

      // The attribute map is replaced whole: tier is gone, region changed.
      const replaced = await api('PATCH', '/admin/tenants/acme/branches/store-1', { attributes: { region: 'eu-north' } });
      expect(routing(replaced.body)).toEqual({ groups: ['eu', 'stores'], attributes: { region: 'eu-north' } });

      const cleared = await api('PATCH', '/admin/tenants/acme/branches/store-1', { groups: [] });
      expect(routing(cleared.body)).toEqual({ groups: [], attributes: { region: 'eu-north' } });
      await api('PATCH', '/admin/tenants/acme/branches/store-1', { groups: ['stores'] });

      const audit = await api('GET', '/admin/audit?tenant=acme&event=branch.routing_changed&limit=1');
      expect(audit.body.entries[0]).toMatchObject({ branchId: 'store-1', source: 'admin' });
      expect(audit.body.entries[0].detail).toEqual({ groups: ['stores'], attributes: { region: 'eu-north' } });
    });

    it('refuses bad groups and attributes with 400 naming them, and unknown branches with 404', async () => {
      const B = '/admin/tenants/acme/branches';
      await refused('PATCH', `${B}/hq`, { groups: ['Not A Label'] }, 'group "Not A Label" must be a DNS-1123 label');
      await refused('PATCH', `${B}/hq`, { attributes: { '1st': 'x' } }, 'name "1st"');
      await refused('PATCH', `${B}/hq`, { attributes: { region: 7 } }, 'field "attributes.region"');
      await refused('PATCH', `${B}/hq`, { groups: 'stores' }, 'field "groups"');
      await refused('PATCH', `${B}/hq`, { colour: 'red' }, 'unknown field "colour"');
      await refused('POST', B, { id: 'store-9', groups: ['UPPER'] }, 'group "UPPER" must be a DNS-1123 label');
      expect((await api('GET', `${B}/store-9`)).status).toBe(404);

      const missing = await api('PATCH', `${B}/nope`, { groups: ['stores'] });
      expect(missing.status).toBe(404);
      expect(missing.body.error).toEqual({ code: 'not_found', message: 'branch acme/nope does not exist' });
      expect((await api('PATCH', '/admin/tenants/nope/branches/hq', { groups: [] })).status).toBe(404);
    });
  });

  describe('routes', () => {
    it('starts with none, in the routes answer and in the tenant', async () => {
      expect(await api('GET', '/admin/tenants/acme/routes')).toEqual({ status: 200, body: { routes: [] } });
      expect((await api('GET', '/admin/tenants/acme')).body.routes).toEqual([]);
    });

    it('PUT saves a valid list and answers it; the tenant shows it too', async () => {
      const put = await api('PUT', '/admin/tenants/acme/routes', { routes: [ORDERS, CATALOG] });
      expect(put).toEqual({ status: 200, body: { routes: [ORDERS, CATALOG] } });
      expect((await api('GET', '/admin/tenants/acme/routes')).body).toEqual({ routes: [ORDERS, CATALOG] });
      expect((await api('GET', '/admin/tenants/acme')).body.routes).toEqual([ORDERS, CATALOG]);
      expect((await api('GET', '/admin/tenants')).body.tenants.find((t: { id: string }) => t.id === 'acme').routes).toEqual([ORDERS, CATALOG]);

      const audit = await api('GET', '/admin/audit?tenant=acme&event=tenant.updated&limit=1');
      expect(audit.body.entries[0]).toMatchObject({ source: 'admin', detail: { routes: [ORDERS, CATALOG] } });

      // PUT replaces the whole list.
      expect((await api('PUT', '/admin/tenants/acme/routes', { routes: [CATALOG] })).body).toEqual({ routes: [CATALOG] });
    });

    it('refuses a filter naming an attribute no branch has, naming it, and keeps the saved list', async () => {
      const typo = { ...ORDERS, filter: 'region = branch.regoin' };
      await refused('PUT', '/admin/tenants/acme/routes', { routes: [typo] }, 'route "orders-home": filter: no branch of this tenant has attribute "regoin"');
      expect((await api('GET', '/admin/tenants/acme/routes')).body).toEqual({ routes: [CATALOG] });
    });

    it('refuses a malformed filter with the position of the fault', async () => {
      await refused('PUT', '/admin/tenants/acme/routes', { routes: [{ ...ORDERS, filter: 'region = = branch.region' }] }, 'route "orders-home": filter: expected a value');
      const r = await api('PUT', '/admin/tenants/acme/routes', { routes: [{ ...ORDERS, filter: 'region = = branch.region' }] });
      expect(r.body.error.message).toMatch(/ at 9, found "="/);
    });

    it('refuses unknown fields, at the top and in a route, and malformed routes', async () => {
      const R = '/admin/tenants/acme/routes';
      await refused('PUT', R, { routes: [], colour: 'red' }, 'unknown field "colour"');
      await refused('PUT', R, { routes: [{ ...CATALOG, colour: 'red' }] }, 'routes[0]: unknown field "colour"');
      await refused('PUT', R, { routes: [CATALOG, CATALOG] }, '"catalog" is used twice');
      await refused('PUT', R, { routes: [{ ...CATALOG, tables: ['orders'] }] }, 'route "catalog": table "orders" must be schema.table');
      await refused('PUT', R, { routes: [{ ...CATALOG, to: [] }] }, 'route "catalog": from and to each need a group');
      await refused('PUT', R, {}, 'field "routes"');
      await refused('PUT', R, { routes: { catalog: CATALOG } }, 'field "routes"');
      expect((await api('GET', R)).body).toEqual({ routes: [CATALOG] });
    });

    it('DELETE clears the routes: everything goes to everyone again', async () => {
      expect(await api('DELETE', '/admin/tenants/acme/routes')).toEqual({ status: 200, body: { routes: [] } });
      expect((await api('GET', '/admin/tenants/acme/routes')).body).toEqual({ routes: [] });
      expect((await api('GET', '/admin/tenants/acme')).body.routes).toEqual([]);
    });

    it('checks filters against attributes only once the tenant has branches, so routes can come first', async () => {
      expect((await api('POST', '/admin/tenants', { id: 'fresh' })).status).toBe(201);
      const put = await api('PUT', '/admin/tenants/fresh/routes', { routes: [ORDERS] });
      expect(put).toEqual({ status: 200, body: { routes: [ORDERS] } });
    });

    it('answers 404 for an unknown tenant and 405 for other methods', async () => {
      for (const method of ['GET', 'PUT', 'DELETE']) {
        const r = await api(method, '/admin/tenants/nope/routes', method === 'PUT' ? { routes: [] } : undefined);
        expect(r.status, method).toBe(404);
        expect(r.body.error.message).toContain('tenant nope does not exist');
      }
      const post = await fetch(`${app.url}/admin/tenants/acme/routes`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });
      expect(post.status).toBe(405);
      expect(post.headers.get('allow')).toBe('GET, PUT, DELETE, HEAD');
    });
  });

  describe('table merge declarations', () => {
    it('sets, shows and clears the tables a tenant merges by column, normalised', async () => {
      const set = await api('PATCH', '/admin/tenants/acme', { tables: [{ name: 'public.product', additive: ['stock', 'reserved'] }, { name: 'public.customer', merge: 'column' }] });
      expect(set.status).toBe(200);
      expect(set.body.tables).toEqual([
        { name: 'public.product', merge: 'column', additive: ['reserved', 'stock'] },
        { name: 'public.customer', merge: 'column', additive: [] },
      ]);
      expect((await api('GET', '/admin/tenants/acme')).body.tables).toEqual(set.body.tables);
      expect((await api('PATCH', '/admin/tenants/acme', { tables: [] })).body.tables).toEqual([]);
    });

    it('refuses a declaration that cannot be meant, naming it', async () => {
      await refused('PATCH', '/admin/tenants/acme', { tables: [{ name: 'public.product', merge: 'row', additive: ['stock'] }] }, 'tables[0]: additive columns need merge: column');
      await refused('PATCH', '/admin/tenants/acme', { tables: [{ name: 'product' }] }, 'tables[0].name must be schema.table');
      expect((await api('GET', '/admin/tenants/acme')).body.tables).toEqual([]);
    });
  });

  it("says in a branch's status whether its rows follow its routing as it is now", async () => {
    expect((await api('POST', '/admin/tenants', { id: 'follow' })).status).toBe(201);
    expect((await api('POST', '/admin/tenants/follow/branches', { id: 'b1', groups: ['stores'], attributes: { region: 'eu' } })).status).toBe(201);
    const followed = async () => (await api('GET', '/admin/tenants/follow/branches/b1/status')).body.routingFollowed as boolean;
    // No routes: everything goes everywhere, nothing to follow.
    expect(await followed()).toBe(true);
    expect((await api('PUT', '/admin/tenants/follow/routes', { routes: [ORDERS] })).status).toBe(200);
    // Routes now, which the branch has not been brought in line with (it resyncs when it connects).
    expect(await followed()).toBe(false);
    const b = await app.ctx.store.getBranch('follow', 'b1');
    await app.ctx.store.markRoutingSynced('follow', 'b1', { routes: [ORDERS], groups: b?.groups ?? [], attributes: b?.attributes ?? {} });
    expect(await followed()).toBe(true);
    // Its attribute changes: out of line again.
    expect((await api('PATCH', '/admin/tenants/follow/branches/b1', { attributes: { region: 'us' } })).status).toBe(200);
    expect(await followed()).toBe(false);
    expect((await api('GET', '/admin/tenants/follow/branches/b1/status')).body.connection).toBeNull();
  });
});
