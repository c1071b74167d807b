/** Tenant spec.schemaChanges and Branch status.schemaVersion on a real API server and PostgreSQL. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listSchemaChanges } from '../../hub/schema/publish.js';
import { setCursor } from '../../hub/log.js';
import type { Branch, Tenant } from '../../operator/api/v1alpha1.js';
import { BRANCHES, EVENTS, TENANTS, type KubeObject } from '../../operator/kube/resources.js';
import type { Operator } from '../../operator/main.js';
import { skipEnvtest } from '../envtest/binaries.js';
import { useControlPlane } from '../envtest/harness.js';
import { useTestDatabase } from '../support/pg.js';
import { createBranch, createHub, createTenant, eventually, inspectStore, ready, reconcileAllAgain, startTestOperator, waitReady } from './support.js';

const ADD = { name: 'add-points', sql: 'ALTER TABLE public.customer ADD COLUMN points integer NOT NULL DEFAULT 0;\n', description: 'loyalty points' };
const INDEX = { name: 'points-index', sql: 'CREATE INDEX customer_points ON public.customer (points);\n' };
const RENAME = { name: 'rename-note', sql: 'ALTER TABLE public.customer RENAME COLUMN note TO remark;\n' };

describe.skipIf(skipEnvtest)('schema changes through a Tenant resource', () => {
  const env = useControlPlane();
  const db = useTestDatabase('op_schema');
  let ns = '';
  let op: Operator;
  let inspect: ReturnType<typeof inspectStore>;

  const published = async () => {
    const t = await inspect.getTenant('acme');
    if (!t) throw new Error('tenant acme is not in the hub database');
    return listSchemaChanges(inspect.pool, t);
  };
  const setChanges = (changes: readonly object[]) => env.cp.admin.mergePatch(TENANTS, ns, 'acme', { spec: { schemaChanges: changes } });

  beforeAll(async () => {
    ns = await env.cp.createNamespace('schema');
    op = await startTestOperator(env.cp, ns);
    inspect = inspectStore(db.url);
    await createHub(env.cp.admin, ns, db.url);
    await createTenant(env.cp.admin, ns, 'acme', { schemaChanges: [ADD] });
  });
  afterAll(async () => {
    await op?.stop();
    await inspect?.pool.end();
  });

  it('publishes a Tenant’s schema changes into its log once each, and shows the version', async () => {
    const t = await waitReady<Tenant>(env.cp.admin, TENANTS, ns, 'acme');
    expect(t.status?.schemaVersion).toBe(1);
    expect(ready(t)?.message).toContain('schema version 1');
    expect(await published()).toMatchObject([{ version: 1, name: 'add-points', sql: ADD.sql, description: 'loyalty points', publishedBy: 'operator' }]);
    const events = await env.cp.admin.list<KubeObject & { reason?: string; message?: string }>(EVENTS, ns);
    expect(events.items.find((e) => e.reason === 'SchemaChangePublished')?.message).toContain('"add-points" published as version 1 (add_column)');

    await setChanges([ADD, INDEX]);
    await eventually(async () => expect((await env.cp.admin.get<Tenant>(TENANTS, ns, 'acme')).status?.schemaVersion).toBe(2));
    await reconcileAllAgain(op);
    expect((await published()).map((c) => [c.version, c.name])).toEqual([
      [1, 'add-points'],
      [2, 'points-index'],
    ]);
  });

  it('shows on each Branch the version it reached, and follows it until the branch caught up', async () => {
    await createBranch(env.cp.admin, ns, 'store-1', 'acme');
    let b = await waitReady<Branch>(env.cp.admin, BRANCHES, ns, 'store-1');
    expect(b.status?.schemaVersion).toBe(0);
    expect(ready(b)?.message).toContain('2 schema change(s) not applied yet');
    // Stands in for the agent: the hub writes this cursor when a branch acknowledges up to there.
    const t = await inspect.getTenant('acme');
    const [first] = await published();
    await setCursor(inspect.pool, t?.schemaName ?? '', 'store-1', first?.offset ?? 0);
    b = await eventually(async () => {
      const got = await env.cp.admin.get<Branch>(BRANCHES, ns, 'store-1');
      expect(got.status?.schemaVersion).toBe(1);
      return got;
    }, 30_000);
    expect(ready(b)?.message).toContain('1 schema change(s) not applied yet');
  });

  it('refuses to change a published change, and publishes nothing until its SQL is put back', async () => {
    await setChanges([{ ...ADD, sql: 'ALTER TABLE public.customer ADD COLUMN points bigint NOT NULL DEFAULT 0;\n' }, INDEX, RENAME]);
    const t = await waitReady<Tenant>(env.cp.admin, TENANTS, ns, 'acme', 'False', 'SchemaChangeModified');
    expect(ready(t)?.message).toContain('"add-points" (version 1) was published with other SQL');
    expect(t.status?.schemaVersion).toBe(2);
    expect(await published()).toHaveLength(2);
    await setChanges([ADD, INDEX, RENAME]);
    const fixed = await waitReady<Tenant>(env.cp.admin, TENANTS, ns, 'acme');
    expect(fixed.status?.schemaVersion).toBe(3);
  });

  it('names a change the hub refuses, and publishes none after it until it is fixed', async () => {
    const drop = { name: 'drop-customer', sql: 'DROP TABLE public.customer;\n' };
    const after = { name: 'after-drop', sql: 'CREATE INDEX customer_remark ON public.customer (remark);\n' };
    await setChanges([ADD, INDEX, RENAME, drop, after]);
    const t = await waitReady<Tenant>(env.cp.admin, TENANTS, ns, 'acme', 'False', 'SchemaChangeRefused');
    expect(ready(t)?.message).toContain('spec.schemaChanges "drop-customer" refused by the hub');
    expect(ready(t)?.message).toMatch(/DROP TABLE|drop/i);
    expect((await published()).map((c) => c.name)).toEqual(['add-points', 'points-index', 'rename-note']);
    await setChanges([ADD, INDEX, RENAME, after]);
    expect((await waitReady<Tenant>(env.cp.admin, TENANTS, ns, 'acme')).status?.schemaVersion).toBe(4);
    expect((await published()).map((c) => c.name)).toEqual(['add-points', 'points-index', 'rename-note', 'after-drop']);
  });

  it('is checked by the API server: names, and one entry per name', async () => {
    const refused = async (changes: object[]): Promise<string> => {
      try {
        await createTenant(env.cp.admin, ns, `bad-${Math.random().toString(36).slice(2, 8)}`, { schemaChanges: changes });
      } catch (err) {
        return (err as Error).message;
      }
      throw new Error('accepted');
    };
    expect(await refused([{ name: 'Add Points', sql: ADD.sql }])).toContain('spec.schemaChanges[0].name');
    expect(await refused([ADD, { ...INDEX, name: ADD.name }])).toMatch(/Duplicate value/);
    expect(await refused([{ name: 'empty', sql: '' }])).toContain('spec.schemaChanges[0].sql');
  });
});
