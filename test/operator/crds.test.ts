/** The CRDs on a real API server: they install, default what they promise, and reject what they must. */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { describe, expect, it } from 'vitest';
import { KubeError } from '../../operator/kube/client.js';
import { BRANCHES, DEPLOYMENTS, HUBS, NAMESPACES, TENANTS, resourcePath, type KubeObject, type ResourceType } from '../../operator/kube/resources.js';
import { repoRoot, skipEnvtest } from '../envtest/binaries.js';
import { useControlPlane } from '../envtest/harness.js';

type Obj = KubeObject & { spec?: Record<string, unknown>; status?: Record<string, unknown> };

const hubSpec = {
  database: { secretRef: { name: 'hub-db' } },
  jwt: { secretRef: { name: 'hub-jwt' } },
};

describe.skipIf(skipEnvtest)('CRDs', () => {
  const env = useControlPlane();
  let ns = '';
  const create = async (t: ResourceType, name: string, spec: unknown): Promise<Obj> => {
    ns ||= await env.cp.createNamespace('crds');
    return env.cp.admin.create<Obj>(t, { apiVersion: 'hubbroker.io/v1alpha1', kind: t.kind, metadata: { name, namespace: ns }, spec } as Obj);
  };
  /** The API server's message for an invalid object; fails the test if it was accepted. */
  const rejection = async (t: ResourceType, name: string, spec: unknown): Promise<string> => {
    try {
      await create(t, name, spec);
    } catch (err) {
      expect(err).toBeInstanceOf(KubeError);
      expect((err as KubeError).status).toBe(422);
      return (err as KubeError).message;
    }
    throw new Error(`${t.kind} ${name} was accepted`);
  };

  it('install with short names, a category and the status and scale subresources', async () => {
    const disco = await env.cp.admin.client.request<{ resources: { name: string; shortNames?: string[]; categories?: string[] }[] }>({
      method: 'GET',
      path: '/apis/hubbroker.io/v1alpha1',
    });
    const byName = Object.fromEntries(disco.resources.map((r) => [r.name, r]));
    expect(byName.hubs?.shortNames).toEqual(['hbh']);
    expect(byName.tenants?.shortNames).toEqual(['hbt']);
    expect(byName.branches?.shortNames).toEqual(['hbb']);
    for (const r of ['hubs', 'tenants', 'branches']) expect(byName[r]?.categories).toEqual(['hub-broker']);
    expect(Object.keys(byName).sort()).toEqual(['branches', 'branches/status', 'hubs', 'hubs/scale', 'hubs/status', 'tenants', 'tenants/status']);
  });

  it('fill in the documented defaults', async () => {
    const hub = await create(HUBS, 'defaults', hubSpec);
    expect(hub.spec).toEqual({
      database: { secretRef: { name: 'hub-db', key: 'url' } },
      jwt: { secretRef: { name: 'hub-jwt', key: 'keys' } },
      replicas: { min: 1, max: 1, connectionsPerReplica: 10000, headroom: 2 },
      service: { type: 'ClusterIP', port: 8080 },
      logLevel: 'info',
      disruption: { maxUnavailable: 1 },
    });
    const tenant = await create(TENANTS, 'defaults', { hubRef: { name: 'defaults' } });
    expect(tenant.spec).toEqual({ hubRef: { name: 'defaults' }, suspended: false, conflictStrategy: 'LastWriteWins', deletionPolicy: 'Retain' });
    const branch = await create(BRANCHES, 'defaults', { tenantRef: { name: 'defaults' } });
    expect(branch.spec).toEqual({ tenantRef: { name: 'defaults' }, suspended: false, credentials: { gracePeriodSeconds: 3600 } });
  });

  it('show Ready, replicas, branches, schema versions and age as printer columns', async () => {
    const table = await env.cp.admin.client.request<{ columnDefinitions: { name: string }[] }>({
      method: 'GET',
      path: resourcePath(HUBS, ns),
      accept: 'application/json;as=Table;v=v1;g=meta.k8s.io',
    });
    expect(table.columnDefinitions.map((c) => c.name)).toEqual(['Name', 'Ready', 'Replicas', 'Available', 'Branches', 'Endpoint', 'Reason', 'Age']);
    const tenants = await env.cp.admin.client.request<{ columnDefinitions: { name: string }[] }>({
      method: 'GET',
      path: resourcePath(TENANTS, ns),
      accept: 'application/json;as=Table;v=v1;g=meta.k8s.io',
    });
    expect(tenants.columnDefinitions.map((c) => c.name)).toEqual(['Name', 'Ready', 'Hub', 'Branches', 'Max', 'Suspended', 'Schema-Version', 'Schema', 'Reason', 'Age']);
    const branches = await env.cp.admin.client.request<{ columnDefinitions: { name: string }[] }>({
      method: 'GET',
      path: resourcePath(BRANCHES, ns),
      accept: 'application/json;as=Table;v=v1;g=meta.k8s.io',
    });
    expect(branches.columnDefinitions.map((c) => c.name)).toEqual(['Name', 'Ready', 'Tenant', 'Suspended', 'Groups', 'Schema', 'Secret', 'Key-Rotated', 'Reason', 'Age']);
  });

  describe('reject', () => {
    it('a Hub whose name cannot name its Service', async () => {
      expect(await rejection(HUBS, '9lives', hubSpec)).toContain("a Hub's name is also its Service's and must be a DNS-1035 label");
    });

    it('a Hub with replicas.max below replicas.min', async () => {
      const msg = await rejection(HUBS, 'minmax', { ...hubSpec, replicas: { min: 3, max: 2 }, redis: { secretRef: { name: 'r' } } });
      expect(msg).toContain('spec.replicas.max must be at least spec.replicas.min');
    });

    it('a Hub whose Redis is both a URL and Sentinel, or neither', async () => {
      const both = { ...hubSpec, redis: { secretRef: { name: 'r' }, sentinel: { name: 'm', sentinels: ['s:26379'] } } };
      expect(await rejection(HUBS, 'bothredis', both)).toContain('spec.redis needs exactly one of secretRef (a Redis URL) and sentinel');
      expect(await rejection(HUBS, 'noredisref', { ...hubSpec, redis: { prefix: 'x:' } })).toContain('spec.redis needs exactly one of');
      expect(await rejection(HUBS, 'badsentinel', { ...hubSpec, redis: { sentinel: { name: 'm', sentinels: ['no-port'] } } })).toContain('spec.redis.sentinel.sentinels[0]');
      await expect(create(HUBS, 'sentinel', { ...hubSpec, replicas: { max: 3 }, redis: { sentinel: { name: 'm', sentinels: ['s-0:26379', '[::1]:26379'] } } })).resolves.toBeDefined();
    });

    it('a Hub with more than one replica and no Redis', async () => {
      expect(await rejection(HUBS, 'noredis', { ...hubSpec, replicas: { max: 3 } })).toContain('spec.redis is required when spec.replicas.max > 1');
      await expect(create(HUBS, 'withredis', { ...hubSpec, replicas: { max: 3 }, redis: { secretRef: { name: 'r' } } })).resolves.toBeDefined();
    });

    it.each(['ftp://hub.example.com', 'hub.example.com', 'https://'])('a Hub with publicURL %s', async (url) => {
      expect(await rejection(HUBS, `url-${Math.random().toString(36).slice(2, 8)}`, { ...hubSpec, publicURL: url })).toContain(
        'publicURL must be an absolute http or https URL',
      );
    });

    it('a Hub with a negative or malformed maxUnavailable', async () => {
      expect(await rejection(HUBS, 'pdb-neg', { ...hubSpec, disruption: { maxUnavailable: -1 } })).toContain(
        'maxUnavailable must be a non-negative number or a percentage',
      );
      expect(await rejection(HUBS, 'pdb-str', { ...hubSpec, disruption: { maxUnavailable: 'half' } })).toContain('spec.disruption.maxUnavailable');
      await expect(create(HUBS, 'pdb-pct', { ...hubSpec, disruption: { maxUnavailable: '25%' } })).resolves.toBeDefined();
    });

    it('a Hub whose spec.env sets what the operator derives', async () => {
      expect(await rejection(HUBS, 'envdup', { ...hubSpec, env: [{ name: 'DATABASE_URL', value: 'postgres://elsewhere' }] })).toContain(
        'spec.env cannot set a variable the operator derives from another field',
      );
      await expect(create(HUBS, 'envok', { ...hubSpec, env: [{ name: 'HUB_TRUST_PROXY', value: 'true' }] })).resolves.toBeDefined();
    });

    it('a Hub without its database', async () => {
      expect(await rejection(HUBS, 'nodb', { jwt: hubSpec.jwt })).toContain('spec.database: Required value');
    });

    it('a Tenant whose name is not a tenant id', async () => {
      expect(await rejection(TENANTS, 'a.b', { hubRef: { name: 'h' } })).toContain("a Tenant's name is its tenant id");
      expect(await rejection(TENANTS, 'x'.repeat(57), { hubRef: { name: 'h' } })).toContain('at most 56 characters');
      await expect(create(TENANTS, 'y'.repeat(56), { hubRef: { name: 'h' } })).resolves.toBeDefined();
    });

    it('a Tenant with BranchPriority and no priorities', async () => {
      expect(await rejection(TENANTS, 'prio', { hubRef: { name: 'h' }, conflictStrategy: 'BranchPriority' })).toContain(
        'spec.branchPriority must name at least one branch when conflictStrategy is BranchPriority',
      );
      await expect(create(TENANTS, 'prio-ok', { hubRef: { name: 'h' }, conflictStrategy: 'BranchPriority', branchPriority: ['hq'] })).resolves.toBeDefined();
    });

    it('a Tenant with an unknown strategy, policy or negative limit', async () => {
      expect(await rejection(TENANTS, 'enum1', { hubRef: { name: 'h' }, conflictStrategy: 'Random' })).toContain('spec.conflictStrategy: Unsupported value');
      expect(await rejection(TENANTS, 'enum2', { hubRef: { name: 'h' }, deletionPolicy: 'delete' })).toContain('spec.deletionPolicy: Unsupported value');
      expect(await rejection(TENANTS, 'neg', { hubRef: { name: 'h' }, maxBranches: -1 })).toContain('spec.maxBranches');
      expect(await rejection(TENANTS, 'rate', { hubRef: { name: 'h' }, rateLimit: { messagesPerSecond: 0, burst: 1 } })).toContain(
        'spec.rateLimit.messagesPerSecond',
      );
    });

    it('a change of a Tenant’s hubRef', async () => {
      const t = await create(TENANTS, 'immutable', { hubRef: { name: 'h1' } });
      const err = await env.cp.admin
        .mergePatch(TENANTS, ns, 'immutable', { spec: { hubRef: { name: 'h2' } } })
        .then(() => undefined, (e: unknown) => e);
      expect((err as KubeError).message).toContain('spec.hubRef is immutable');
      expect(t.spec?.hubRef).toEqual({ name: 'h1' });
    });

    it('a Branch whose name is not a branch id', async () => {
      expect(await rejection(BRANCHES, 'store.7', { tenantRef: { name: 't' } })).toContain("a Branch's name is its branch id");
    });

    it('a change of a Branch’s tenantRef', async () => {
      await create(BRANCHES, 'moving', { tenantRef: { name: 't1' } });
      const err = await env.cp.admin
        .mergePatch(BRANCHES, ns, 'moving', { spec: { tenantRef: { name: 't2' } } })
        .then(() => undefined, (e: unknown) => e);
      expect((err as KubeError).message).toContain('spec.tenantRef is immutable');
      // Other fields stay editable.
      await expect(env.cp.admin.mergePatch(BRANCHES, ns, 'moving', { spec: { credentials: { rotate: 'r1' } } })).resolves.toBeDefined();
    });
  });

  it('keep status apart from spec (status subresource)', async () => {
    await create(TENANTS, 'status', { hubRef: { name: 'h' } });
    const viaMain = await env.cp.admin.mergePatch<Obj>(TENANTS, ns, 'status', { status: { branches: 5 } });
    expect(viaMain.status).toBeUndefined();
    const viaStatus = await env.cp.admin.mergePatch<Obj>(TENANTS, ns, 'status', { status: { branches: 5 } }, 'status');
    expect(viaStatus.status).toEqual({ branches: 5 });
    expect(viaStatus.metadata.generation).toBe(1);
  });

  it('scale a Hub through its floor, spec.replicas.min', async () => {
    await create(HUBS, 'scaled', { ...hubSpec, replicas: { min: 1, max: 5 }, redis: { secretRef: { name: 'r' } } });
    const path = resourcePath(HUBS, ns, 'scaled', 'scale');
    const scale = await env.cp.admin.client.request<{ spec: { replicas: number } }>({ method: 'GET', path });
    expect(scale.spec.replicas).toBe(1);
    await env.cp.admin.client.request({ method: 'PATCH', path, body: { spec: { replicas: 3 } }, contentType: 'application/merge-patch+json' });
    const hub = await env.cp.admin.get<Obj>(HUBS, ns, 'scaled');
    expect(hub.spec?.replicas).toEqual({ min: 3, max: 5, connectionsPerReplica: 10000, headroom: 2 });
    // Scaling past max is refused by the same rule as an edit.
    const err = await env.cp.admin.client
      .request({ method: 'PATCH', path, body: { spec: { replicas: 9 } }, contentType: 'application/merge-patch+json' })
      .then(() => undefined, (e: unknown) => e);
    expect((err as KubeError).message).toContain('spec.replicas.max must be at least spec.replicas.min');
  });

  it('accept the sample manifests in config/kubernetes (server-side dry run)', async () => {
    await env.cp.admin.create(NAMESPACES, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'retail' } });
    const types: Record<string, ResourceType> = { Hub: HUBS, Tenant: TENANTS, Branch: BRANCHES, Deployment: DEPLOYMENTS };
    const dir = join(repoRoot, 'config/kubernetes');
    const kinds: string[] = [];
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml'))) {
      for (const doc of YAML.parseAllDocuments(readFileSync(join(dir, file), 'utf8'))) {
        const obj = doc.toJS() as Obj;
        const type = types[obj.kind ?? ''];
        if (!type) throw new Error(`${file}: unexpected kind ${obj.kind}`);
        await env.cp.admin.client.request({ method: 'POST', path: resourcePath(type, obj.metadata.namespace), query: { dryRun: 'All' }, body: obj });
        kinds.push(obj.kind ?? '');
      }
    }
    expect(kinds.sort()).toEqual(['Branch', 'Branch', 'Branch', 'Deployment', 'Hub', 'Tenant']);
  });
});
