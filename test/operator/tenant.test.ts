/** Tenants on a real API server and PostgreSQL: row and schema, settings, failures, deletion policies. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tenant } from '../../operator/api/v1alpha1.js';
import { BRANCHES, EVENTS, HUBS, TENANTS, type KubeObject } from '../../operator/kube/resources.js';
import type { Operator } from '../../operator/main.js';
import { skipEnvtest } from '../envtest/binaries.js';
import { useControlPlane } from '../envtest/harness.js';
import { useTestDatabase } from '../support/pg.js';
import {
  createBranch,
  createHub,
  createSecret,
  createTenant,
  eventually,
  inspectStore,
  readSecret,
  ready,
  reconcileAllAgain,
  schemaExists,
  startTestOperator,
  waitReady,
} from './support.js';

type Event = KubeObject & { reason?: string; type?: string; message?: string; involvedObject?: { name?: string; kind?: string } };

describe.skipIf(skipEnvtest)('Tenant', () => {
  const env = useControlPlane();
  const db = useTestDatabase('op_tenant');
  let ns = '';
  let op: Operator;
  let inspect: ReturnType<typeof inspectStore>;

  beforeAll(async () => {
    ns = await env.cp.createNamespace('tenant');
    op = await startTestOperator(env.cp, ns);
    inspect = inspectStore(db.url);
    await createHub(env.cp.admin, ns, db.url);
  });
  afterAll(async () => {
    await op?.stop();
    await inspect?.pool.end();
  });

  it('creates its row and schema in the hub database', async () => {
    await createTenant(env.cp.admin, ns, 'acme-retail', {
      maxBranches: 10,
      rateLimit: { messagesPerSecond: 50, burst: 100 },
      conflictStrategy: 'BranchPriority',
      branchPriority: ['hq'],
    });
    const t = await waitReady<Tenant>(env.cp.admin, TENANTS, ns, 'acme-retail');
    expect(t.status).toMatchObject({ schema: 'tenant_acme_retail', branches: 0, observedGeneration: 1 });
    expect(ready(t)).toMatchObject({ reason: 'Ready', message: 'schema tenant_acme_retail, 0 branches of at most 10' });
    expect(await schemaExists(db.url, 'tenant_acme_retail')).toBe(true);
    expect(await inspect.getTenant('acme-retail')).toMatchObject({
      status: 'active',
      maxBranches: 10,
      rateLimit: { messagesPerSecond: 50, burst: 100 },
      conflictStrategy: 'branch-priority',
      branchPriority: ['hq'],
      deletionPolicy: 'retain',
    });
    const events = await env.cp.admin.list<Event>(EVENTS, ns);
    expect(events.items.some((e) => e.involvedObject?.name === 'acme-retail' && e.reason === 'TenantCreated')).toBe(true);
  });

  it('follows spec changes: limits, suspension, resumption', async () => {
    await env.cp.admin.mergePatch(TENANTS, ns, 'acme-retail', { spec: { maxBranches: null, rateLimit: null, suspended: true } });
    await waitReady(env.cp.admin, TENANTS, ns, 'acme-retail', 'True', 'Suspended');
    expect(await inspect.getTenant('acme-retail')).toMatchObject({ status: 'suspended', maxBranches: null, rateLimit: null });
    await env.cp.admin.mergePatch(TENANTS, ns, 'acme-retail', { spec: { suspended: false } });
    await waitReady(env.cp.admin, TENANTS, ns, 'acme-retail', 'True', 'Ready');
    expect((await inspect.getTenant('acme-retail'))?.status).toBe('active');
  });

  it('writes status only when it changes, and never writes spec', async () => {
    const before = await env.cp.admin.get<Tenant>(TENANTS, ns, 'acme-retail');
    await reconcileAllAgain(op);
    const after = await env.cp.admin.get<Tenant>(TENANTS, ns, 'acme-retail');
    expect(after.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
    const managers = (after.metadata as { managedFields?: { manager: string; subresource?: string; fieldsV1?: { f?: Record<string, unknown> } }[] }).managedFields ?? [];
    for (const m of managers.filter((x) => x.manager === 'hub-broker-operator')) {
      expect(Object.keys(m.fieldsV1 ?? {})).not.toContain('f:spec');
      expect(m.subresource === 'status' || Object.keys(m.fieldsV1 ?? {}).every((k) => k === 'f:metadata')).toBe(true);
    }
  });

  it('reports a missing Hub as Ready=False with an Event, and recovers', async () => {
    await createTenant(env.cp.admin, ns, 'orphan', { hubRef: { name: 'nowhere' } });
    const t = await waitReady<Tenant>(env.cp.admin, TENANTS, ns, 'orphan', 'False', 'HubNotFound');
    expect(ready(t)?.message).toBe(`Hub nowhere not found in namespace ${ns}`);
    const events = await env.cp.admin.list<Event>(EVENTS, ns);
    expect(events.items.filter((e) => e.involvedObject?.name === 'orphan' && e.reason === 'HubNotFound' && e.type === 'Warning')).toHaveLength(1);
    await createHub(env.cp.admin, ns, db.url, {}, 'nowhere');
    await waitReady(env.cp.admin, TENANTS, ns, 'orphan', 'True', 'Ready');
  });

  it('survives an unreachable database: Ready=False, retried with backoff, no crash, recovers', async () => {
    await createSecret(env.cp.admin, ns, 'broken-db', { url: 'postgres://postgres@127.0.0.1:1/nothing' });
    await env.cp.admin.create(HUBS, {
      apiVersion: 'hubbroker.io/v1alpha1',
      kind: 'Hub',
      metadata: { name: 'broken', namespace: ns },
      spec: { database: { secretRef: { name: 'broken-db' } }, jwt: { secretRef: { name: 'hub-jwt' } } },
    } as KubeObject);
    await createTenant(env.cp.admin, ns, 'stranded', { hubRef: { name: 'broken' } });
    const t = await waitReady<Tenant>(env.cp.admin, TENANTS, ns, 'stranded', 'False', 'DatabaseUnavailable');
    expect(ready(t)?.message).toContain('ECONNREFUSED');
    await waitReady(env.cp.admin, HUBS, ns, 'broken', 'False', 'DatabaseUnavailable');
    // Retries keep coming, spaced out, and the operator keeps serving everything else.
    const retries = async () => (await op.metrics.queueRetries.get()).values.find((v) => v.labels.kind === 'Tenant')?.value ?? 0;
    const r0 = await retries();
    await eventually(async () => expect(await retries()).toBeGreaterThan(r0 + 1), 10_000);
    expect(op.isLeader()).toBe(true);
    // Fixing the Secret heals the Hub and the Tenant.
    await createSecret(env.cp.admin, ns, 'broken-db', { url: db.url });
    await waitReady(env.cp.admin, TENANTS, ns, 'stranded', 'True', 'Ready');
    expect(await schemaExists(db.url, 'tenant_stranded')).toBe(true);
  });

  it('with deletionPolicy Retain keeps its schema, and a new Tenant of that name adopts it', async () => {
    await createTenant(env.cp.admin, ns, 'keeper', { deletionPolicy: 'Retain' });
    await waitReady(env.cp.admin, TENANTS, ns, 'keeper');
    await createBranch(env.cp.admin, ns, 'k1', 'keeper');
    await waitReady(env.cp.admin, BRANCHES, ns, 'k1');
    const key = (await readSecret(env.cp.admin, ns, 'k1-credentials'))?.API_KEY ?? '';
    await env.cp.admin.delete(TENANTS, ns, 'keeper');
    await eventually(async () => expect(await env.cp.admin.find(TENANTS, ns, 'keeper')).toBeNull());
    expect(await inspect.getTenant('keeper')).toBeNull();
    expect(await schemaExists(db.url, 'tenant_keeper')).toBe(true);
    // The branch's key died with the tenant row.
    expect(await inspect.verifyBranchKey('keeper', 'k1', key)).toEqual({ ok: false, reason: 'unknown_branch' });
    await createTenant(env.cp.admin, ns, 'keeper');
    await waitReady(env.cp.admin, TENANTS, ns, 'keeper');
    expect(await inspect.getTenant('keeper')).toMatchObject({ schemaName: 'tenant_keeper', status: 'active' });
    const audit = await inspect.listAudit({ tenantId: 'keeper' });
    expect(audit.filter((a) => a.event === 'tenant.created').map((a) => a.detail)).toContainEqual({ retainedSchema: true });
  });

  it('with deletionPolicy Delete drops its schema', async () => {
    await createTenant(env.cp.admin, ns, 'goner', { deletionPolicy: 'Delete' });
    await waitReady(env.cp.admin, TENANTS, ns, 'goner');
    expect(await schemaExists(db.url, 'tenant_goner')).toBe(true);
    await env.cp.admin.delete(TENANTS, ns, 'goner');
    await eventually(async () => expect(await env.cp.admin.find(TENANTS, ns, 'goner')).toBeNull());
    expect(await inspect.getTenant('goner')).toBeNull();
    expect(await schemaExists(db.url, 'tenant_goner')).toBe(false);
    const events = await env.cp.admin.list<Event>(EVENTS, ns);
    expect(events.items.find((e) => e.involvedObject?.name === 'goner' && e.reason === 'TenantDeleted')?.message).toContain('dropped');
  });
});
