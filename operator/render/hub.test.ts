import { describe, expect, it } from 'vitest';
import type { Hub } from '../api/v1alpha1.js';
import { configDigest, hubConfig, renderHub } from './hub.js';

const hub = (spec: Partial<Hub['spec']> = {}, labels: Record<string, string> = {}): Hub => ({
  apiVersion: 'hubbroker.io/v1alpha1',
  kind: 'Hub',
  metadata: { name: 'main', namespace: 'hubs', uid: 'uid-1', labels },
  spec: {
    replicas: { min: 1, max: 1, connectionsPerReplica: 10_000, headroom: 2 },
    database: { secretRef: { name: 'hub-db', key: 'url' } },
    jwt: { secretRef: { name: 'hub-jwt', key: 'keys' } },
    service: { type: 'ClusterIP', port: 8080 },
    logLevel: 'info',
    disruption: { maxUnavailable: 1 },
    ...spec,
  },
});

const input = { replicas: 2, defaultImage: 'ghcr.io/example/hub-broker:1.0.0' };

describe('renderHub', () => {
  it('runs `hub-broker hub` with the environment the hub reads', () => {
    const { deployment } = renderHub(
      hub({
        redis: { secretRef: { name: 'hub-redis', key: 'url' } },
        adminToken: { secretRef: { name: 'hub-admin', key: 'token' } },
      }),
      input,
    );
    const c = deployment.spec?.template.spec?.containers[0];
    expect(c?.args).toEqual(['hub']);
    expect(c?.image).toBe('ghcr.io/example/hub-broker:1.0.0');
    expect(c?.env).toEqual([
      { name: 'HUB_INSTANCE_ID', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'DATABASE_URL', valueFrom: { secretKeyRef: { name: 'hub-db', key: 'url' } } },
      { name: 'REDIS_URL', valueFrom: { secretKeyRef: { name: 'hub-redis', key: 'url' } } },
      { name: 'HUB_JWT_KEYS', valueFrom: { secretKeyRef: { name: 'hub-jwt', key: 'keys' } } },
      { name: 'HUB_ADMIN_TOKEN', valueFrom: { secretKeyRef: { name: 'hub-admin', key: 'token' } } },
    ]);
    expect(c?.envFrom).toEqual([{ configMapRef: { name: 'main-config' } }]);
    expect(c?.readinessProbe?.httpGet).toEqual({ path: '/ready', port: 'http', scheme: 'HTTP' });
    expect(c?.livenessProbe?.httpGet).toEqual({ path: '/health', port: 'http', scheme: 'HTTP' });
    expect(deployment.spec?.replicas).toBe(2);
  });

  it('finds Redis through Sentinel when spec.redis.sentinel says so, passwords from Secrets', () => {
    const c = renderHub(
      hub({
        redis: {
          sentinel: {
            name: 'mymaster',
            sentinels: ['redis-sentinel-0:26379', 'redis-sentinel-1:26379'],
            passwordSecretRef: { name: 'hub-redis', key: 'password' },
          },
        },
      }),
      input,
    ).deployment.spec?.template.spec?.containers[0];
    const env = c?.env ?? [];
    expect(env.find((e) => e.name === 'REDIS_URL')).toBeUndefined();
    expect(env.filter((e) => e.name.startsWith('REDIS_'))).toEqual([
      { name: 'REDIS_SENTINELS', value: 'redis-sentinel-0:26379,redis-sentinel-1:26379' },
      { name: 'REDIS_SENTINEL_NAME', value: 'mymaster' },
      { name: 'REDIS_PASSWORD', valueFrom: { secretKeyRef: { name: 'hub-redis', key: 'password' } } },
    ]);
  });

  it('passes further hub settings through spec.env, after the ones it derives', () => {
    const c = renderHub(hub({ env: [{ name: 'HUB_TRUST_PROXY', value: 'true' }] }), input).deployment.spec?.template.spec?.containers[0];
    expect(c?.env?.at(-1)).toEqual({ name: 'HUB_TRUST_PROXY', value: 'true' });
  });

  it('writes rates the way the hub parses them', () => {
    const h = hub({ limits: { tenantRate: { perSecond: 0.0015, burst: 1 }, branchRate: { perSecond: 1e6, burst: 2 } } });
    expect(hubConfig(h)).toMatchObject({ HUB_TENANT_RATE: '0.0015:1', HUB_BRANCH_RATE: '1000000:2' });
  });

  it('puts the non-secret settings in the ConfigMap', () => {
    const h = hub({
      logLevel: 'debug',
      limits: { maxConnections: 5000, tenantRate: { perSecond: 100, burst: 200 }, branchRate: { perSecond: 2.5, burst: 10 } },
      redis: { secretRef: { name: 'r', key: 'url' }, prefix: 'eu1:' },
      tls: { secretName: 'hub-tls' },
    });
    expect(hubConfig(h)).toEqual({
      HUB_PORT: '8080',
      HUB_LOG_LEVEL: 'debug',
      HUB_MAX_CONNECTIONS: '5000',
      HUB_TENANT_RATE: '100:200',
      HUB_BRANCH_RATE: '2.5:10',
      REDIS_PREFIX: 'eu1:',
      HUB_TLS_CERT_FILE: '/etc/hub-broker/tls/tls.crt',
      HUB_TLS_KEY_FILE: '/etc/hub-broker/tls/tls.key',
    });
    const { deployment, configMap } = renderHub(h, input);
    expect(configMap.data).toEqual(hubConfig(h));
    const pod = deployment.spec?.template.spec;
    expect(pod?.volumes).toEqual([{ name: 'tls', secret: { secretName: 'hub-tls' } }]);
    expect(pod?.containers[0]?.readinessProbe?.httpGet?.scheme).toBe('HTTPS');
  });

  it('rolls the pods when the configuration changes, not otherwise', () => {
    const a = renderHub(hub({ logLevel: 'info' }), input).deployment.spec?.template.metadata?.annotations;
    const b = renderHub(hub({ logLevel: 'info' }), { ...input, replicas: 5 }).deployment.spec?.template.metadata?.annotations;
    const c = renderHub(hub({ logLevel: 'warn' }), input).deployment.spec?.template.metadata?.annotations;
    expect(a).toEqual(b);
    expect(a?.['hubbroker.io/config-hash']).not.toEqual(c?.['hubbroker.io/config-hash']);
    expect(configDigest({ a: '1', b: '2' })).toBe(configDigest({ b: '2', a: '1' }));
  });

  it('owns every child and selects pods by fixed labels', () => {
    const children = renderHub(hub(), input);
    for (const child of Object.values(children)) {
      expect(child.metadata.ownerReferences).toEqual([
        { apiVersion: 'hubbroker.io/v1alpha1', kind: 'Hub', name: 'main', uid: 'uid-1', controller: true },
      ]);
      expect(child.metadata.namespace).toBe('hubs');
    }
    const selector = { 'app.kubernetes.io/name': 'hub-broker', 'app.kubernetes.io/component': 'hub', 'hubbroker.io/hub': 'main' };
    expect(children.deployment.spec?.selector.matchLabels).toEqual(selector);
    expect(children.service.spec?.selector).toEqual(selector);
    expect(children.pdb.spec?.selector?.matchLabels).toEqual(selector);
    expect(children.pdb.spec?.maxUnavailable).toBe(1);
    expect(children.service.spec?.ports).toEqual([{ name: 'http', port: 8080, targetPort: 'http', protocol: 'TCP' }]);
  });

  it('copies no Argo CD tracking labels to children', () => {
    const children = renderHub(hub({}, { 'app.kubernetes.io/instance': 'hubs-app', 'argocd.argoproj.io/instance': 'x', team: 'sre' }), input);
    for (const child of Object.values(children)) {
      expect(child.metadata.labels).not.toHaveProperty('app.kubernetes.io/instance');
      expect(child.metadata.labels).not.toHaveProperty('argocd.argoproj.io/instance');
      expect(child.metadata.labels?.team).toBe('sre');
    }
    expect(children.deployment.spec?.template.metadata?.labels).not.toHaveProperty('team');
  });

  it('is deterministic and leaves out what the Hub does not set', () => {
    expect(renderHub(hub(), input)).toEqual(renderHub(hub(), input));
    const pod = renderHub(hub(), input).deployment.spec?.template.spec;
    expect(pod).not.toHaveProperty('volumes');
    expect(pod).not.toHaveProperty('nodeSelector');
    expect(pod?.containers[0]).not.toHaveProperty('resources');
    expect(JSON.stringify(renderHub(hub(), input))).not.toContain('null');
  });

  it('prefers the Hub’s own image', () => {
    const c = renderHub(hub({ image: 'registry.local/hub-broker:dev', imagePullPolicy: 'Always' }), input).deployment.spec?.template.spec
      ?.containers[0];
    expect(c?.image).toBe('registry.local/hub-broker:dev');
    expect(c?.imagePullPolicy).toBe('Always');
  });
});
