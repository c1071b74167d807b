/** Routing fields on a real API server and PostgreSQL: Branch groups and attributes, Tenant routes and table merges. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeError } from '../../operator/kube/client.js';
import { BRANCHES, TENANTS } from '../../operator/kube/resources.js';
import type { Operator } from '../../operator/main.js';
import { useTestDatabase } from '../support/pg.js';
import { skipEnvtest } from '../envtest/binaries.js';
import { useControlPlane } from '../envtest/harness.js';
import { createBranch, createHub, createTenant, eventually, inspectStore, ready, startTestOperator, waitReady } from './support.js';

const ROUTES = [
  { name: 'sales', tables: ['sales.*'], from: ['store'], to: ['hq'] },
  { name: 'own-customers', tables: ['public.customer'], from: ['hq', 'store'], to: ['store'], filter: 'store_id = branch.store_id' },
];

describe.skipIf(skipEnvtest)('routing resources', () => {
  const env = useControlPlane();
  const db = useTestDatabase('op_routing');
  let ns = '';
  let op: Operator;
  let inspect: ReturnType<typeof inspectStore>;

  beforeAll(async () => {
    ns = await env.cp.createNamespace('routing');
    op = await startTestOperator(env.cp, ns);
    inspect = inspectStore(db.url);
    await createHub(env.cp.admin, ns, db.url);
    await createTenant(env.cp.admin, ns, 'chain', { routes: ROUTES });
    await waitReady(env.cp.admin, TENANTS, ns, 'chain');
  });
  afterAll(async () => {
    await op?.stop();
    await inspect?.pool.end();
  });

  it('puts a Tenant’s routes and its Branches’ groups and attributes into the hub database', async () => {
    expect((await inspect.getTenant('chain'))?.routes).toEqual(ROUTES);
    await createBranch(env.cp.admin, ns, 'hq', 'chain', { groups: ['hq'] });
    await createBranch(env.cp.admin, ns, 'store-17', 'chain', { groups: ['store'], attributes: { store_id: '17', region: 'north' } });
    await waitReady(env.cp.admin, BRANCHES, ns, 'store-17');
    await waitReady(env.cp.admin, BRANCHES, ns, 'hq');
    expect(await inspect.getBranch('chain', 'store-17')).toMatchObject({ groups: ['store'], attributes: { region: 'north', store_id: '17' } });
    expect((await inspect.getBranch('chain', 'hq'))?.groups).toEqual(['hq']);
  });

  it('follows a changed attribute, and clears what the spec no longer says', async () => {
    await env.cp.admin.mergePatch(BRANCHES, ns, 'store-17', { spec: { attributes: { store_id: '18', region: null } } });
    await eventually(async () => expect((await inspect.getBranch('chain', 'store-17'))?.attributes).toEqual({ store_id: '18' }));
    await env.cp.admin.mergePatch(BRANCHES, ns, 'store-17', { spec: { groups: null } });
    await eventually(async () => expect((await inspect.getBranch('chain', 'store-17'))?.groups).toEqual([]));
    await env.cp.admin.mergePatch(BRANCHES, ns, 'store-17', { spec: { groups: ['store'] } });
    await eventually(async () => expect((await inspect.getBranch('chain', 'store-17'))?.groups).toEqual(['store']));
  });

  it('sets Ready=False naming the route when the hub refuses a filter, and recovers once fixed', async () => {
    await env.cp.admin.mergePatch(TENANTS, ns, 'chain', {
      spec: { routes: [...ROUTES, { name: 'typo', tables: ['public.price'], from: ['hq'], to: ['store'], filter: 'region = branch.regoin' }] },
    });
    const t = await waitReady(env.cp.admin, TENANTS, ns, 'chain', 'False', 'InvalidSpec');
    expect(ready(t)?.message).toContain('route "typo"');
    expect(ready(t)?.message).toContain('regoin');
    // The hub database keeps the routes it had.
    expect((await inspect.getTenant('chain'))?.routes).toEqual(ROUTES);
    await env.cp.admin.mergePatch(TENANTS, ns, 'chain', {
      spec: { routes: [...ROUTES, { name: 'typo', tables: ['public.price'], from: ['hq'], to: ['store'], filter: 'store_id = branch.store_id' }] },
    });
    await waitReady(env.cp.admin, TENANTS, ns, 'chain');
    expect((await inspect.getTenant('chain'))?.routes.map((r) => r.name)).toEqual(['sales', 'own-customers', 'typo']);
  });

  it('are checked by the API server: group names, attribute names, route fields', async () => {
    const refused = async (spec: Record<string, unknown>, kind: 'Branch' | 'Tenant', name: string): Promise<string> => {
      try {
        if (kind === 'Branch') await createBranch(env.cp.admin, ns, name, 'chain', spec);
        else await createTenant(env.cp.admin, ns, name, spec);
      } catch (err) {
        expect(err).toBeInstanceOf(KubeError);
        return (err as KubeError).message;
      }
      throw new Error(`${kind} ${name} was accepted`);
    };
    expect(await refused({ groups: ['Stores'] }, 'Branch', 'bad-group')).toContain('spec.groups');
    expect(await refused({ attributes: { '1st': 'x' } }, 'Branch', 'bad-attr')).toContain('attribute names');
    expect(await refused({ routes: [{ name: 'x', tables: [], from: ['hq'], to: ['store'] }] }, 'Tenant', 'bad-route')).toContain('spec.routes[0].tables');
    expect(await refused({ routes: [{ name: 'x', tables: ['nodot'], from: ['hq'], to: ['*'] }] }, 'Tenant', 'bad-table')).toContain('spec.routes[0].tables[0]');
    expect(await refused({ tables: [{ name: 'public.product', merge: 'Row', additive: ['stock'] }] }, 'Tenant', 'bad-merge')).toContain('additive columns need merge Column');
  });

  it('puts a Tenant’s column-level tables and counters into the hub database', async () => {
    await env.cp.admin.mergePatch(TENANTS, ns, 'chain', { spec: { tables: [{ name: 'public.product', additive: ['stock'] }, { name: 'public.customer', merge: 'Column' }] } });
    await eventually(async () =>
      expect((await inspect.getTenant('chain'))?.tables).toEqual([
        { name: 'public.product', merge: 'column', additive: ['stock'] },
        { name: 'public.customer', merge: 'column', additive: [] },
      ]),
    );
  });
});
