/**
 * The operator and the hub agree: a real hub, configured exactly from the environment the
 * operator's Deployment gives its container (ConfigMap, Secrets, downward API), accepts the
 * credentials the operator writes into a Branch's Secret at POST /auth/token.
 */
import type { V1ConfigMap, V1Deployment, V1Secret } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHub, type HubApp } from '../../hub/app.js';
import { loadConfig } from '../../hub/config.js';
import { requestToken } from '../../hub/testing/harness.js';
import type { Hub } from '../../operator/api/v1alpha1.js';
import { BRANCHES, CONFIGMAPS, DEPLOYMENTS, HUBS, SECRETS, TENANTS, type Api, type KubeObject } from '../../operator/kube/resources.js';
import type { Operator } from '../../operator/main.js';
import { skipEnvtest } from '../envtest/binaries.js';
import { useControlPlane } from '../envtest/harness.js';
import { useTestDatabase } from '../support/pg.js';
import { TEST_ARGON2, createBranch, createHub, createSecret, createTenant, eventually, readSecret, startTestOperator, waitReady } from './support.js';

/** What the kubelet would put in the hub container's environment, from the Deployment the operator wrote. */
async function podEnvironment(api: Api, namespace: string, deployment: V1Deployment & KubeObject, podName: string): Promise<Record<string, string>> {
  const container = deployment.spec?.template.spec?.containers[0];
  const env: Record<string, string> = {};
  for (const from of container?.envFrom ?? []) {
    const cm = await api.get<V1ConfigMap & KubeObject>(CONFIGMAPS, namespace, from.configMapRef?.name ?? '');
    Object.assign(env, cm.data);
  }
  for (const e of container?.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.name') env[e.name] = podName;
    else if (e.valueFrom?.secretKeyRef) {
      const s = await api.get<V1Secret & KubeObject>(SECRETS, namespace, e.valueFrom.secretKeyRef.name ?? '');
      env[e.name] = Buffer.from(s.data?.[e.valueFrom.secretKeyRef.key] ?? '', 'base64').toString('utf8');
    } else throw new Error(`cannot resolve env ${e.name}`);
  }
  return env;
}

describe.skipIf(skipEnvtest)('operator ↔ hub', () => {
  const env = useControlPlane();
  const db = useTestDatabase('op_auth');
  let ns = '';
  let op: Operator;
  let hub: HubApp;

  beforeAll(async () => {
    ns = await env.cp.createNamespace('auth');
    op = await startTestOperator(env.cp, ns);
    await createSecret(env.cp.admin, ns, 'hub-admin', { token: 'admin-secret-token' });
    await createHub(env.cp.admin, ns, db.url, { adminToken: { secretRef: { name: 'hub-admin' } }, env: [{ name: 'HUB_TOKEN_TTL_SECONDS', value: '120' }] });
    await createTenant(env.cp.admin, ns, 'acme');
    await waitReady(env.cp.admin, TENANTS, ns, 'acme');
    const deployment = await eventually(() => env.cp.admin.get<V1Deployment & KubeObject>(DEPLOYMENTS, ns, 'main'));
    const podEnv = await podEnvironment(env.cp.admin, ns, deployment, 'main-7d9f8-x2x4q');
    // Only what a test must change: a free port on loopback, quiet logs, cheap argon2.
    const config = loadConfig({
      env: podEnv,
      overrides: { host: '127.0.0.1', port: 0, logLevel: 'silent', argon2MemoryKib: TEST_ARGON2.memoryCost, argon2TimeCost: TEST_ARGON2.timeCost },
    });
    expect(config.instanceId).toBe('main-7d9f8-x2x4q');
    expect(config.adminToken).toBe('admin-secret-token');
    expect(config.tokenTtlSeconds).toBe(120);
    hub = await startHub(config);
  });
  afterAll(async () => {
    await hub?.stop();
    await op?.stop();
  });

  const token = async (branch: string, apiKey: string) => (await requestToken(hub.url, { tenant_id: 'acme', branch_id: branch, api_key: apiKey })).status;

  it('accepts the credentials in the Branch Secret at /auth/token (200)', async () => {
    await createBranch(env.cp.admin, ns, 'store-1', 'acme');
    await waitReady(env.cp.admin, BRANCHES, ns, 'store-1');
    const creds = await readSecret(env.cp.admin, ns, 'store-1-credentials');
    const h = await env.cp.admin.get<Hub>(HUBS, ns, 'main');
    expect(creds?.HUB_URL).toBe(h.status?.endpoint);
    const r = await requestToken(hub.url, { tenant_id: creds?.TENANT_ID, branch_id: creds?.BRANCH_ID, api_key: creds?.API_KEY });
    expect(r.status).toBe(200);
    expect(r.body.token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(await token('store-1', 'wrong')).toBe(401);
  });

  it('after a rotation accepts the old key during the grace period only', async () => {
    const old = (await readSecret(env.cp.admin, ns, 'store-1-credentials'))?.API_KEY ?? '';
    await env.cp.admin.mergePatch(BRANCHES, ns, 'store-1', { spec: { credentials: { rotate: 'now', gracePeriodSeconds: 2 } } });
    const fresh = await eventually(async () => {
      const k = (await readSecret(env.cp.admin, ns, 'store-1-credentials'))?.API_KEY;
      if (!k || k === old) throw new Error('not rotated');
      return k;
    });
    // The Secret gets the new key a moment before the hub database accepts it (crash-safe rotation).
    await eventually(async () => expect(await token('store-1', fresh)).toBe(200));
    expect(await token('store-1', old)).toBe(200);
    await eventually(async () => expect(await token('store-1', old)).toBe(401), 10_000, 250);
    expect(await token('store-1', fresh)).toBe(200);
  });

  it('refuses a suspended branch, and a deleted one', async () => {
    const key = (await readSecret(env.cp.admin, ns, 'store-1-credentials'))?.API_KEY ?? '';
    await env.cp.admin.mergePatch(BRANCHES, ns, 'store-1', { spec: { suspended: true } });
    await waitReady(env.cp.admin, BRANCHES, ns, 'store-1', 'True', 'Suspended');
    expect(await token('store-1', key)).toBe(401);
    await env.cp.admin.mergePatch(BRANCHES, ns, 'store-1', { spec: { suspended: false } });
    await waitReady(env.cp.admin, BRANCHES, ns, 'store-1', 'True', 'Ready');
    expect(await token('store-1', key)).toBe(200);
    await env.cp.admin.delete(BRANCHES, ns, 'store-1');
    await eventually(async () => expect(await token('store-1', key)).toBe(401));
  });
});
