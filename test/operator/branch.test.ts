/** Branches on a real API server and PostgreSQL: credentials, rotation, suspension, limits, deletion. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Branch, Tenant } from '../../operator/api/v1alpha1.js';
import { Api, BRANCHES, EVENTS, SECRETS, TENANTS, type KubeObject } from '../../operator/kube/resources.js';
import type { Operator } from '../../operator/main.js';
import { generateApiKey } from '../../hub/store/index.js';
import { renderCredentials } from '../../operator/render/credentials.js';
import { useTestDatabase } from '../support/pg.js';
import { skipEnvtest } from '../envtest/binaries.js';
import { useControlPlane } from '../envtest/harness.js';
import {
  createBranch,
  createHub,
  createTenant,
  eventually,
  inspectStore,
  readSecret,
  ready,
  reconcileAllAgain,
  startTestOperator,
  waitReady,
} from './support.js';

describe.skipIf(skipEnvtest)('Branch', () => {
  const env = useControlPlane();
  const db = useTestDatabase('op_branch');
  let ns = '';
  let op: Operator;
  const store = () => inspectStore(db.url);
  let inspect: ReturnType<typeof store>;

  beforeAll(async () => {
    ns = await env.cp.createNamespace('branch');
    op = await startTestOperator(env.cp, ns);
    inspect = store();
    await createHub(env.cp.admin, ns, db.url, { publicURL: 'https://hub.example.com' });
    await createTenant(env.cp.admin, ns, 'acme', { maxBranches: 3 });
    await waitReady(env.cp.admin, TENANTS, ns, 'acme');
  });
  afterAll(async () => {
    await op?.stop();
    await inspect?.pool.end();
  });

  it('gets a Secret <branch>-credentials whose key authenticates', async () => {
    await createBranch(env.cp.admin, ns, 'store-1', 'acme');
    const b = await waitReady<Branch>(env.cp.admin, BRANCHES, ns, 'store-1');
    expect(b.status?.secretName).toBe('store-1-credentials');
    expect(b.status?.keyRotatedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const creds = await readSecret(env.cp.admin, ns, 'store-1-credentials');
    expect(Object.keys(creds ?? {}).sort()).toEqual(['API_KEY', 'BRANCH_ID', 'HUB_URL', 'TENANT_ID']);
    expect(creds).toMatchObject({ HUB_URL: 'https://hub.example.com', TENANT_ID: 'acme', BRANCH_ID: 'store-1' });
    expect(creds?.API_KEY).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(await inspect.verifyBranchKey('acme', 'store-1', creds?.API_KEY ?? '')).toMatchObject({ ok: true });
    expect(await inspect.verifyBranchKey('acme', 'store-1', 'not-the-key')).toEqual({ ok: false, reason: 'wrong_key' });
    const secret = await env.cp.admin.get<KubeObject>(SECRETS, ns, 'store-1-credentials');
    expect(secret.metadata.ownerReferences).toEqual([
      { apiVersion: 'hubbroker.io/v1alpha1', kind: 'Branch', name: 'store-1', uid: b.metadata.uid, controller: true },
    ]);
    expect(b.metadata.finalizers).toEqual(['hubbroker.io/finalizer']);
  });

  it('keeps its key, and changes nothing, when reconciled again', async () => {
    const before = await readSecret(env.cp.admin, ns, 'store-1-credentials');
    const rv = async () => ({
      secret: (await env.cp.admin.get(SECRETS, ns, 'store-1-credentials')).metadata.resourceVersion,
      branch: (await env.cp.admin.get(BRANCHES, ns, 'store-1')).metadata.resourceVersion,
      tenant: (await env.cp.admin.get(TENANTS, ns, 'acme')).metadata.resourceVersion,
    });
    const rvBefore = await rv();
    const events = (await env.cp.admin.list(EVENTS, ns)).items.length;
    await reconcileAllAgain(op);
    await reconcileAllAgain(op);
    expect(await rv()).toEqual(rvBefore);
    expect((await env.cp.admin.list(EVENTS, ns)).items.length).toBe(events);
    expect(await readSecret(env.cp.admin, ns, 'store-1-credentials')).toEqual(before);
  });

  it('never regenerates the key because a cache missed the Secret; a new operator reads it live', async () => {
    const before = await readSecret(env.cp.admin, ns, 'store-1-credentials');
    // A fresh operator starts with empty caches and reconciles everything at once.
    await op.stop();
    op = await startTestOperator(env.cp, ns);
    await reconcileAllAgain(op);
    expect(await readSecret(env.cp.admin, ns, 'store-1-credentials')).toEqual(before);
    expect(await inspect.verifyBranchKey('acme', 'store-1', before?.API_KEY ?? '')).toMatchObject({ ok: true });
  });

  it('rotates on spec.credentials.rotate: the old key works during the grace period, then not', async () => {
    const old = (await readSecret(env.cp.admin, ns, 'store-1-credentials'))?.API_KEY ?? '';
    await env.cp.admin.mergePatch(BRANCHES, ns, 'store-1', { spec: { credentials: { rotate: '2026-03-01', gracePeriodSeconds: 3 } } });
    const fresh = await eventually(async () => {
      const key = (await readSecret(env.cp.admin, ns, 'store-1-credentials'))?.API_KEY;
      if (!key || key === old) throw new Error('not rotated yet');
      return key;
    });
    const b = await waitReady<Branch>(env.cp.admin, BRANCHES, ns, 'store-1');
    expect(b.status?.previousKeyValidUntil).toBeDefined();
    // The Secret gets the new key a moment before the hub database accepts it (crash-safe rotation).
    await eventually(async () => expect(await inspect.verifyBranchKey('acme', 'store-1', fresh)).toMatchObject({ ok: true }));
    expect(await inspect.verifyBranchKey('acme', 'store-1', old)).toMatchObject({ ok: true });
    await eventually(async () => expect(await inspect.verifyBranchKey('acme', 'store-1', old)).toEqual({ ok: false, reason: 'wrong_key' }), 10_000);
    expect(await inspect.verifyBranchKey('acme', 'store-1', fresh)).toMatchObject({ ok: true });
    // The operator comes back when the grace period ends and drops it from the status.
    await eventually(async () => expect((await env.cp.admin.get<Branch>(BRANCHES, ns, 'store-1')).status?.previousKeyValidUntil).toBeUndefined(), 10_000);
    expect(await readSecret(env.cp.admin, ns, 'store-1-credentials')).toMatchObject({ API_KEY: fresh });
  });

  it('finishes a rotation interrupted between writing the Secret and the hub database', async () => {
    const old = (await readSecret(env.cp.admin, ns, 'store-1-credentials'))?.API_KEY ?? '';
    const fresh = generateApiKey();
    // What an operator that crashed mid-rotation leaves behind: its own apply of the new key, marked pending.
    const branch = await env.cp.admin.get<Branch>(BRANCHES, ns, 'store-1');
    const live = await env.cp.admin.get<KubeObject>(SECRETS, ns, 'store-1-credentials');
    const rotate = live.metadata.annotations?.['hubbroker.io/rotate'] ?? '';
    const asOperator = new Api(env.cp.admin.client); // the operator's field manager, as its own apply would be
    await asOperator.apply(SECRETS, renderCredentials(branch, { hubUrl: 'https://hub.example.com', apiKey: fresh, rotate, pending: true }));
    await reconcileAllAgain(op);
    await eventually(async () => expect(await inspect.verifyBranchKey('acme', 'store-1', fresh)).toMatchObject({ ok: true }));
    // Agents still holding the old key keep working through the grace period.
    expect(await inspect.verifyBranchKey('acme', 'store-1', old)).toMatchObject({ ok: true });
    await eventually(async () => {
      const s = await env.cp.admin.get<KubeObject>(SECRETS, ns, 'store-1-credentials');
      expect(s.metadata.annotations?.['hubbroker.io/key-pending']).toBeUndefined();
    });
    expect(await readSecret(env.cp.admin, ns, 'store-1-credentials')).toMatchObject({ API_KEY: fresh });
  });

  it('issues a new key when the Secret is really gone', async () => {
    const old = (await readSecret(env.cp.admin, ns, 'store-1-credentials'))?.API_KEY ?? '';
    await env.cp.admin.delete(SECRETS, ns, 'store-1-credentials');
    await reconcileAllAgain(op);
    const creds = await eventually(async () => {
      const c = await readSecret(env.cp.admin, ns, 'store-1-credentials');
      if (!c) throw new Error('no Secret yet');
      return c;
    });
    expect(creds.API_KEY).not.toBe(old);
    expect(await inspect.verifyBranchKey('acme', 'store-1', creds.API_KEY ?? '')).toMatchObject({ ok: true });
  });

  it('is suspended and resumed in the hub database', async () => {
    const key = (await readSecret(env.cp.admin, ns, 'store-1-credentials'))?.API_KEY ?? '';
    await env.cp.admin.mergePatch(BRANCHES, ns, 'store-1', { spec: { suspended: true } });
    await waitReady(env.cp.admin, BRANCHES, ns, 'store-1', 'True', 'Suspended');
    expect((await inspect.getBranch('acme', 'store-1'))?.status).toBe('suspended');
    expect(await inspect.verifyBranchKey('acme', 'store-1', key)).toEqual({ ok: false, reason: 'suspended' });
    await env.cp.admin.mergePatch(BRANCHES, ns, 'store-1', { spec: { suspended: false } });
    await waitReady(env.cp.admin, BRANCHES, ns, 'store-1', 'True', 'Ready');
    expect(await inspect.verifyBranchKey('acme', 'store-1', key)).toMatchObject({ ok: true });
  });

  it('cannot sign in while its Tenant is suspended', async () => {
    const key = (await readSecret(env.cp.admin, ns, 'store-1-credentials'))?.API_KEY ?? '';
    await env.cp.admin.mergePatch(TENANTS, ns, 'acme', { spec: { suspended: true } });
    await waitReady(env.cp.admin, TENANTS, ns, 'acme', 'True', 'Suspended');
    expect(await inspect.verifyBranchKey('acme', 'store-1', key)).toEqual({ ok: false, reason: 'suspended' });
    await env.cp.admin.mergePatch(TENANTS, ns, 'acme', { spec: { suspended: false } });
    await waitReady(env.cp.admin, TENANTS, ns, 'acme', 'True', 'Ready');
    expect(await inspect.verifyBranchKey('acme', 'store-1', key)).toMatchObject({ ok: true });
  });

  it('over maxBranches is Ready=False with reason MaxBranchesExceeded, until there is room', async () => {
    await createBranch(env.cp.admin, ns, 'store-2', 'acme');
    await createBranch(env.cp.admin, ns, 'store-3', 'acme');
    await waitReady(env.cp.admin, BRANCHES, ns, 'store-2');
    await waitReady(env.cp.admin, BRANCHES, ns, 'store-3');
    await createBranch(env.cp.admin, ns, 'store-4', 'acme');
    const b = await waitReady<Branch>(env.cp.admin, BRANCHES, ns, 'store-4', 'False', 'MaxBranchesExceeded');
    expect(ready(b)?.message).toContain('maximum of 3');
    expect(await readSecret(env.cp.admin, ns, 'store-4-credentials')).toBeNull();
    const events = await env.cp.admin.list<KubeObject & { reason?: string; type?: string; involvedObject?: { name?: string } }>(EVENTS, ns);
    expect(events.items.some((e) => e.involvedObject?.name === 'store-4' && e.reason === 'MaxBranchesExceeded' && e.type === 'Warning')).toBe(true);
    expect((await env.cp.admin.get<Tenant>(TENANTS, ns, 'acme')).status?.branches).toBe(3);
    // Raising the limit lets it in.
    await env.cp.admin.mergePatch(TENANTS, ns, 'acme', { spec: { maxBranches: 4 } });
    await waitReady(env.cp.admin, BRANCHES, ns, 'store-4', 'True', 'Ready');
    await eventually(async () => expect((await env.cp.admin.get<Tenant>(TENANTS, ns, 'acme')).status?.branches).toBe(4));
  });

  it('copies no Argo CD tracking labels to its Secret', async () => {
    await env.cp.admin.mergePatch(TENANTS, ns, 'acme', { spec: { maxBranches: null } });
    await createBranch(env.cp.admin, ns, 'store-5', 'acme', {}, { 'app.kubernetes.io/instance': 'acme-branches', 'argocd.argoproj.io/instance': 'x', region: 'north' });
    await waitReady(env.cp.admin, BRANCHES, ns, 'store-5');
    const secret = await env.cp.admin.get<KubeObject>(SECRETS, ns, 'store-5-credentials');
    expect(secret.metadata.labels).toEqual({
      region: 'north',
      'app.kubernetes.io/name': 'hub-broker',
      'app.kubernetes.io/component': 'branch-credentials',
      'app.kubernetes.io/managed-by': 'hub-broker-operator',
      'hubbroker.io/tenant': 'acme',
      'hubbroker.io/branch': 'store-5',
    });
  });

  it('revokes its key and leaves the hub database when deleted', async () => {
    const key = (await readSecret(env.cp.admin, ns, 'store-5-credentials'))?.API_KEY ?? '';
    expect(await inspect.verifyBranchKey('acme', 'store-5', key)).toMatchObject({ ok: true });
    await env.cp.admin.delete(BRANCHES, ns, 'store-5');
    await eventually(async () => expect(await env.cp.admin.find(BRANCHES, ns, 'store-5')).toBeNull());
    expect(await inspect.getBranch('acme', 'store-5')).toBeNull();
    expect(await inspect.verifyBranchKey('acme', 'store-5', key)).toEqual({ ok: false, reason: 'unknown_branch' });
  });

  it('waits for a missing Tenant with Ready=False and recovers when it appears', async () => {
    await createBranch(env.cp.admin, ns, 'early', 'late-tenant');
    await waitReady(env.cp.admin, BRANCHES, ns, 'early', 'False', 'TenantNotFound');
    await createTenant(env.cp.admin, ns, 'late-tenant');
    await waitReady(env.cp.admin, BRANCHES, ns, 'early', 'True', 'Ready');
  });
});
