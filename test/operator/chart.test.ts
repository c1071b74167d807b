/**
 * The Helm chart, rendered by the Go-built helm: it lints, it carries the CRDs of crds/, it
 * applies to a real API server, and its RBAC is exactly what the operator uses: an operator
 * running with a token of the chart's ServiceAccount does a whole lifecycle without one 403,
 * and every permission the chart grants shows up in the API server's audit log.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { describe, expect, it } from 'vitest';
import { Api, BRANCHES, DEPLOYMENTS, HUBS, NAMESPACES, TENANTS, resourcePath, type KubeObject, type ResourceType } from '../../operator/kube/resources.js';
import { skipEnvtest, repoRoot, requireBinary } from '../envtest/binaries.js';
import { CRDS, useControlPlane } from '../envtest/harness.js';
import { KubeClient } from '../../operator/kube/client.js';
import { useTestDatabase } from '../support/pg.js';
import { createBranch, createHub, createTenant, eventually, readSecret, startTestOperator, waitReady } from './support.js';

const chart = join(repoRoot, 'charts/hub-broker');
const helm = (...args: string[]) => execFileSync(requireBinary('helm'), args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

type Doc = KubeObject & Record<string, unknown>;
const render = (...set: string[]): Doc[] =>
  YAML.parseAllDocuments(helm('template', 'hb', chart, '--namespace', 'hub-broker', ...set.flatMap((s) => ['--set', s])))
    .map((d) => d.toJS() as Doc | null)
    .filter((d): d is Doc => d !== null);

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

interface AuditEvent {
  verb: string;
  requestReceivedTimestamp: string;
  user: { username: string };
  objectRef?: { apiGroup?: string; resource?: string; subresource?: string };
  responseStatus?: { code?: number };
}

const GENERIC: Record<string, ResourceType> = {
  ServiceAccount: { group: '', version: 'v1', plural: 'serviceaccounts', kind: 'ServiceAccount', namespaced: true },
  ClusterRole: { group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'clusterroles', kind: 'ClusterRole', namespaced: false },
  ClusterRoleBinding: { group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'clusterrolebindings', kind: 'ClusterRoleBinding', namespaced: false },
  Role: { group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'roles', kind: 'Role', namespaced: true },
  RoleBinding: { group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'rolebindings', kind: 'RoleBinding', namespaced: true },
  Service: { group: '', version: 'v1', plural: 'services', kind: 'Service', namespaced: true },
  Deployment: DEPLOYMENTS,
  CustomResourceDefinition: CRDS,
};

describe.skipIf(skipEnvtest)('Helm chart', () => {
  const env = useControlPlane({ audit: true, crds: false });
  const db = useTestDatabase('op_chart');

  it('passes helm lint --strict, and its schema refuses bad values', () => {
    expect(helm('lint', chart, '--strict')).toContain('0 chart(s) failed');
    expect(() => helm('lint', chart, '--strict', '--set', 'operator.workers=0')).toThrow();
    expect(() => helm('lint', chart, '--strict', '--set', 'replicas=2')).toThrow();
  });

  it('renders without --kube-version with the helm built here, and refuses a Kubernetes older than 1.29 (docs/kubernetes.md)', () => {
    expect(helm('template', 'hb', chart)).toContain('kind: Deployment');
    expect(helm('template', 'hb', chart, '--kube-version', '1.29')).toContain('kind: Deployment');
    expect(() => helm('template', 'hb', chart, '--kube-version', '1.28')).toThrow(/incompatible with Kubernetes v1\.28/);
  });

  it('carries the CRDs of crds/ byte for byte, rendered with the keep policy', () => {
    const files = readdirSync(join(repoRoot, 'crds')).filter((f) => f.endsWith('.yaml')).sort();
    expect(readdirSync(join(chart, 'files/crds')).sort()).toEqual(files);
    for (const f of files) {
      expect(readFileSync(join(chart, 'files/crds', f), 'utf8'), `charts/hub-broker/files/crds/${f}: cp crds/*.yaml charts/hub-broker/files/crds/`).toBe(
        readFileSync(join(repoRoot, 'crds', f), 'utf8'),
      );
    }
    const rendered = render().filter((d) => d.kind === 'CustomResourceDefinition');
    expect(rendered).toHaveLength(3);
    for (const crd of rendered) {
      const plural = crd.metadata.name?.split('.')[0] ?? '';
      const source = YAML.parse(readFileSync(join(repoRoot, 'crds', `hubbroker.io_${plural}.yaml`), 'utf8')) as Doc;
      expect(crd.metadata.annotations).toEqual({ 'helm.sh/resource-policy': 'keep', 'argocd.argoproj.io/sync-options': 'Prune=false,Delete=false' });
      expect({ ...crd, metadata: { ...crd.metadata, annotations: undefined } }).toEqual({ ...source, metadata: { ...source.metadata, annotations: undefined } });
    }
    expect(render('crds.install=false').some((d) => d.kind === 'CustomResourceDefinition')).toBe(false);
    expect(render('crds.keep=false').find((d) => d.kind === 'CustomResourceDefinition')?.metadata.annotations).toBeUndefined();
  });

  it('runs one image for operator and hubs', () => {
    const d = render('image.tag=1.2.3').find((x) => x.kind === 'Deployment') as Doc & {
      spec: { template: { spec: { containers: { image: string; args: string[]; env: { name: string; value?: string }[] }[] } } };
    };
    const c = d.spec.template.spec.containers[0];
    expect(c?.image).toBe('ghcr.io/hub-broker/hub-broker:1.2.3');
    expect(c?.args).toEqual(['operator']);
    expect(c?.env.find((e) => e.name === 'OPERATOR_HUB_IMAGE')?.value).toBe('ghcr.io/hub-broker/hub-broker:1.2.3');
  });

  it('renders the optional ServiceMonitors and PrometheusRule from the hub’s metric names', () => {
    expect(render().some((d) => d.kind === 'ServiceMonitor' || d.kind === 'PrometheusRule')).toBe(false);
    const docs = render('serviceMonitor.enabled=true', 'prometheusRule.enabled=true', 'prometheusRule.metrics.branchLag=hub_broker_lag_renamed');
    expect(docs.filter((d) => d.kind === 'ServiceMonitor').map((d) => d.metadata.name)).toEqual(['hb-hub-broker', 'hb-hub-broker-hubs']);
    const rule = docs.find((d) => d.kind === 'PrometheusRule') as Doc & { spec: { groups: { rules: { alert: string; expr: string }[] }[] } };
    const exprs = Object.fromEntries(rule.spec.groups.flatMap((g) => g.rules).map((r) => [r.alert, r.expr]));
    expect(Object.keys(exprs)).toEqual([
      'HubBrokerBranchLagging',
      'HubBrokerConflictRateHigh',
      'HubBrokerConnectionDrops',
      'HubBrokerLogDepthHigh',
      'HubBrokerDeadLettersWaiting',
      'HubBrokerSchemaChangeBlocked',
      'HubBrokerOperatorReconcileErrors',
      'HubBrokerOperatorNoLeader',
    ]);
    expect(exprs.HubBrokerBranchLagging).toBe('max by (namespace, tenant, branch) (hub_broker_lag_renamed) > 10000');
    expect(exprs.HubBrokerConflictRateHigh).toContain('rate(hub_broker_conflicts_total[10m])');
    expect(exprs.HubBrokerConnectionDrops).toContain('hub_broker_connections_closed_total{code!~"1000|1001|1012|4009"}');
    expect(exprs.HubBrokerLogDepthHigh).toContain('hub_broker_log_depth');
    expect(exprs.HubBrokerDeadLettersWaiting).toBe('max by (namespace, tenant, branch) (hub_broker_agent_dead_letter_oldest_seconds) > 3600');
    expect(exprs.HubBrokerSchemaChangeBlocked).toBe('max by (namespace, tenant, branch) (hub_broker_agent_schema_blocked) > 0');
  });

  it('applies to the API server; the operator runs on its RBAC alone, which is enough and no more than needed', async () => {
    const admin = env.cp.admin;
    const docs = render();
    await admin.create(NAMESPACES, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'hub-broker' } });
    for (const doc of docs) {
      const type = GENERIC[doc.kind ?? ''];
      if (!type) throw new Error(`the test does not know how to apply a ${doc.kind}`);
      await admin.apply(type, doc);
    }
    // CRDs established, then the resources they define are served.
    await eventually(() => admin.client.request({ method: 'GET', path: resourcePath(BRANCHES) }));
    await eventually(() => admin.client.request({ method: 'GET', path: resourcePath(HUBS) }));
    await eventually(() => admin.client.request({ method: 'GET', path: resourcePath(TENANTS) }));

    const sa = docs.find((d) => d.kind === 'ServiceAccount');
    const saName = sa?.metadata.name ?? '';
    const user = `system:serviceaccount:hub-broker:${saName}`;
    const tr = await admin.client.request<{ status: { token: string } }>({
      method: 'POST',
      path: `/api/v1/namespaces/hub-broker/serviceaccounts/${saName}/token`,
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } },
    });
    const asOperator = new Api(new KubeClient(env.cp.kubeConfig(tr.status.token)));
    await expect(asOperator.list(NAMESPACES)).rejects.toThrow(/403/);
    asOperator.client.close();

    // As deployed by the chart: every namespace, leader election in the release namespace.
    const since = Date.now();
    const op = await startTestOperator(env.cp, 'hub-broker', {
      token: tr.status.token,
      leaderElection: true,
      config: { watchNamespace: '', leaseName: 'hub-broker-operator' },
    });
    try {
      await eventually(() => expect(op.isLeader()).toBe(true));
      const ns = await env.cp.createNamespace('shop');
      await createHub(admin, ns, db.url);
      await createTenant(admin, ns, 'acme');
      await createBranch(admin, ns, 'b1', 'acme');
      await createBranch(admin, ns, 'b2', 'acme');
      await waitReady(admin, BRANCHES, ns, 'b1');
      await waitReady(admin, BRANCHES, ns, 'b2');
      await admin.mergePatch(DEPLOYMENTS, ns, 'main', { status: { replicas: 1, readyReplicas: 1, availableReplicas: 1 } }, 'status');
      await waitReady(admin, HUBS, ns, 'main', 'True', 'Ready');
      const key = (await readSecret(admin, ns, 'b1-credentials'))?.API_KEY;
      await admin.mergePatch(BRANCHES, ns, 'b1', { spec: { credentials: { rotate: 'x' } } });
      await eventually(async () => expect((await readSecret(admin, ns, 'b1-credentials'))?.API_KEY).not.toBe(key));
      // Deletions: finalizers of Branch, Tenant and Hub.
      await admin.delete(BRANCHES, ns, 'b2');
      await admin.delete(TENANTS, ns, 'acme');
      await admin.delete(HUBS, ns, 'main');
      await eventually(async () => expect(await admin.find(HUBS, ns, 'main')).toBeNull());
    } finally {
      await op.stop();
    }

    const events = readFileSync(env.cp.auditLogPath ?? '', 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as AuditEvent)
      .filter((e) => e.user.username === user && e.objectRef?.resource && Date.parse(e.requestReceivedTimestamp) >= since);
    const id = (group: string, resource: string, verb: string) => `${group || 'core'}/${resource}:${verb}`;
    const forbidden = events
      .filter((e) => e.responseStatus?.code === 403)
      .map((e) => id(e.objectRef?.apiGroup ?? '', `${e.objectRef?.resource}${e.objectRef?.subresource ? `/${e.objectRef.subresource}` : ''}`, e.verb));
    expect(forbidden, 'the chart’s RBAC is enough').toEqual([]);
    const used = new Set<string>();
    for (const e of events) {
      const resource = `${e.objectRef?.resource}${e.objectRef?.subresource ? `/${e.objectRef.subresource}` : ''}`;
      used.add(id(e.objectRef?.apiGroup ?? '', resource, e.verb));
      // A server-side apply that created the object (201) was authorized for create too.
      if (e.verb === 'patch' && e.responseStatus?.code === 201) used.add(id(e.objectRef?.apiGroup ?? '', resource, 'create'));
    }
    const granted = docs
      .filter((d) => d.kind === 'ClusterRole' || d.kind === 'Role')
      .flatMap((d) => (d as unknown as { rules: Rule[] }).rules)
      .flatMap((r) => r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => id(g, res, v)))));
    expect(granted.filter((g) => !used.has(g)), 'every permission the chart grants is used').toEqual([]);
  }, 120_000);
});
