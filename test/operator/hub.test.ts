/** Hubs on a real API server: children, replicas that follow the branches, status, no churn, deletion order. */
import type { V1ConfigMap, V1Deployment, V1PodDisruptionBudget, V1Service } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hub } from '../../operator/api/v1alpha1.js';
import { BRANCHES, CONFIGMAPS, DEPLOYMENTS, EVENTS, HUBS, PDBS, SECRETS, SERVICES, TENANTS, type KubeObject } from '../../operator/kube/resources.js';
import type { Operator } from '../../operator/main.js';
import { skipEnvtest } from '../envtest/binaries.js';
import { useControlPlane } from '../envtest/harness.js';
import { useTestDatabase } from '../support/pg.js';
import { createBranch, createHub, createSecret, createTenant, eventually, reconcileAllAgain, ready, startTestOperator, waitReady } from './support.js';

type Deployment = V1Deployment & KubeObject;

describe.skipIf(skipEnvtest)('Hub', () => {
  const env = useControlPlane();
  const db = useTestDatabase('op_hub');
  let ns = '';
  let op: Operator;
  const deployment = () => env.cp.admin.get<Deployment>(DEPLOYMENTS, ns, 'main');
  /** No kubelet here: play the Deployment controller and mark `n` replicas ready. */
  const podsReady = (n: number) =>
    env.cp.admin.mergePatch(DEPLOYMENTS, ns, 'main', { status: { replicas: n, readyReplicas: n, availableReplicas: n, updatedReplicas: n } }, 'status');

  beforeAll(async () => {
    ns = await env.cp.createNamespace('hub');
    op = await startTestOperator(env.cp, ns);
    await createSecret(env.cp.admin, ns, 'hub-redis', { url: 'redis://redis:6379' });
    await createHub(env.cp.admin, ns, db.url, {
      replicas: { min: 1, max: 4, connectionsPerReplica: 2, headroom: 1 },
      redis: { secretRef: { name: 'hub-redis' }, prefix: 'eu1:' },
      limits: { maxConnections: 1000, tenantRate: { perSecond: 100, burst: 200 } },
    }, 'main');
  });
  afterAll(async () => {
    await op?.stop();
  });

  it('runs `hub-broker hub` in a Deployment, with Service, ConfigMap and PodDisruptionBudget it owns', async () => {
    const d = await eventually(deployment);
    const hub = await env.cp.admin.get<Hub>(HUBS, ns, 'main');
    const owner = { apiVersion: 'hubbroker.io/v1alpha1', kind: 'Hub', name: 'main', uid: hub.metadata.uid, controller: true };
    const c = d.spec?.template.spec?.containers[0];
    expect(c?.image).toBe('hub-broker:test');
    expect(c?.args).toEqual(['hub']);
    expect(c?.env?.map((e) => e.name)).toEqual(['HUB_INSTANCE_ID', 'DATABASE_URL', 'REDIS_URL', 'HUB_JWT_KEYS']);
    expect(d.metadata.ownerReferences).toEqual([owner]);
    const svc = await env.cp.admin.get<V1Service & KubeObject>(SERVICES, ns, 'main');
    expect(svc.spec?.ports?.[0]).toMatchObject({ name: 'http', port: 8080, targetPort: 'http' });
    expect(svc.metadata.ownerReferences).toEqual([owner]);
    const cm = await env.cp.admin.get<V1ConfigMap & KubeObject>(CONFIGMAPS, ns, 'main-config');
    expect(cm.data).toEqual({ HUB_PORT: '8080', HUB_LOG_LEVEL: 'info', HUB_MAX_CONNECTIONS: '1000', HUB_TENANT_RATE: '100:200', REDIS_PREFIX: 'eu1:' });
    expect(cm.metadata.ownerReferences).toEqual([owner]);
    const pdb = await env.cp.admin.get<V1PodDisruptionBudget & KubeObject>(PDBS, ns, 'main');
    expect(pdb.spec?.maxUnavailable).toBe(1);
    expect(pdb.metadata.ownerReferences).toEqual([owner]);
    // Written with server-side apply under one field manager.
    const managers = ((d.metadata as { managedFields?: { manager: string; operation: string }[] }).managedFields ?? []).map((m) => `${m.manager}/${m.operation}`);
    expect(managers).toContain('hub-broker-operator/Apply');
  });

  it('is Progressing until its pods are ready, then Ready, with its endpoint in the status', async () => {
    const h = await waitReady<Hub>(env.cp.admin, HUBS, ns, 'main', 'False', 'Progressing');
    expect(ready(h)?.message).toBe('0/1 replicas ready');
    await podsReady(1);
    const ok = await waitReady<Hub>(env.cp.admin, HUBS, ns, 'main', 'True', 'Ready');
    expect(ok.status).toMatchObject({
      replicas: 1,
      readyReplicas: 1,
      branches: 0,
      tenants: 0,
      endpoint: `http://main.${ns}.svc:8080`,
      selector: 'app.kubernetes.io/name=hub-broker,app.kubernetes.io/component=hub,hubbroker.io/hub=main',
    });
  });

  it('migrated the hub database', async () => {
    const events = await env.cp.admin.list<KubeObject & { reason?: string; involvedObject?: { name?: string } }>(EVENTS, ns);
    expect(events.items.some((e) => e.involvedObject?.name === 'main' && e.reason === 'Migrated')).toBe(true);
  });

  it('scales its Deployment with the number of Branches that may connect', async () => {
    await createTenant(env.cp.admin, ns, 'acme');
    await waitReady(env.cp.admin, TENANTS, ns, 'acme');
    const replicas = async (n: number) => eventually(async () => expect((await deployment()).spec?.replicas).toBe(n));
    for (const b of ['b1', 'b2', 'b3']) await createBranch(env.cp.admin, ns, b, 'acme');
    await replicas(2); // 3 branches, 2 connections per replica
    for (const b of ['b4', 'b5', 'b6', 'b7', 'b8', 'b9']) await createBranch(env.cp.admin, ns, b, 'acme');
    await replicas(4); // 9 branches would need 5: capped at max
    const capped = await eventually(async () => {
      const h = await env.cp.admin.get<Hub>(HUBS, ns, 'main');
      expect(ready(h)?.message).toContain('5 needed for 9 branches, capped at spec.replicas.max');
      return h;
    });
    expect(capped.status?.branches).toBe(9);
    // Suspending branches (or their tenant) takes them out of the count.
    for (const b of ['b4', 'b5', 'b6', 'b7', 'b8']) await env.cp.admin.mergePatch(BRANCHES, ns, b, { spec: { suspended: true } });
    await replicas(2);
    await env.cp.admin.mergePatch(TENANTS, ns, 'acme', { spec: { suspended: true } });
    await replicas(1);
    await env.cp.admin.mergePatch(TENANTS, ns, 'acme', { spec: { suspended: false } });
    await replicas(2);
    await podsReady(2);
    await waitReady(env.cp.admin, HUBS, ns, 'main', 'True', 'Ready');
  });

  it('changes nothing when reconciled again', async () => {
    await eventually(async () => expect(op.controller.idle()).toBe(true));
    const snapshot = async () => {
      const rv = async (t: typeof HUBS, name: string) => (await env.cp.admin.get(t, ns, name)).metadata.resourceVersion;
      return {
        hub: await rv(HUBS, 'main'),
        deployment: await rv(DEPLOYMENTS, 'main'),
        service: await rv(SERVICES, 'main'),
        configMap: await rv(CONFIGMAPS, 'main-config'),
        pdb: await rv(PDBS, 'main'),
        tenant: await rv(TENANTS, 'acme'),
        branch: await rv(BRANCHES, 'b1'),
        secret: await rv(SECRETS, 'b1-credentials'),
      };
    };
    const before = await snapshot();
    await reconcileAllAgain(op);
    await reconcileAllAgain(op);
    expect(await snapshot()).toEqual(before);
  });

  it('restores a child that was changed or deleted', async () => {
    await env.cp.admin.mergePatch(CONFIGMAPS, ns, 'main-config', { data: { HUB_LOG_LEVEL: 'trace' } });
    await env.cp.admin.delete(SERVICES, ns, 'main');
    await reconcileAllAgain(op);
    expect((await env.cp.admin.get<V1ConfigMap & KubeObject>(CONFIGMAPS, ns, 'main-config')).data?.HUB_LOG_LEVEL).toBe('info');
    expect(await env.cp.admin.find(SERVICES, ns, 'main')).not.toBeNull();
  });

  it('rolls its pods when its configuration changes', async () => {
    const hash = async () => (await deployment()).spec?.template.metadata?.annotations?.['hubbroker.io/config-hash'];
    const before = await hash();
    await env.cp.admin.mergePatch(HUBS, ns, 'main', { spec: { logLevel: 'debug' } });
    await eventually(async () => expect(await hash()).not.toBe(before));
    expect((await env.cp.admin.get<V1ConfigMap & KubeObject>(CONFIGMAPS, ns, 'main-config')).data?.HUB_LOG_LEVEL).toBe('debug');
  });

  it('waits for its Tenants to be deleted before it goes', async () => {
    await env.cp.admin.delete(HUBS, ns, 'main');
    const h = await waitReady<Hub>(env.cp.admin, HUBS, ns, 'main', 'False', 'TenantsRemaining');
    expect(ready(h)?.message).toBe('waiting for 1 Tenants to be deleted first (acme)');
    await env.cp.admin.delete(TENANTS, ns, 'acme');
    await eventually(async () => expect(await env.cp.admin.find(HUBS, ns, 'main')).toBeNull());
    expect(await env.cp.admin.find(TENANTS, ns, 'acme')).toBeNull();
  });
});
