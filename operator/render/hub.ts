/**
 * The Kubernetes objects that run a Hub: ConfigMap, Service, Deployment of `hub-broker hub`
 * and PodDisruptionBudget. Pure: the same Hub and inputs always give the same objects, which is
 * what makes a second server-side apply a no-op.
 */
import { createHash } from 'node:crypto';
import type { V1ConfigMap, V1Deployment, V1EnvVar, V1PodDisruptionBudget, V1Service } from '@kubernetes/client-node';
import { LABEL, MANAGED_BY, type Hub } from '../api/v1alpha1.js';
import type { KubeObject } from '../kube/resources.js';
import { childLabels } from '../policy/labels.js';
import { compact, controllerRef } from './owner.js';

/** The port the hub listens on inside its container. */
export const HUB_CONTAINER_PORT = 8080;
export const TLS_MOUNT = '/etc/hub-broker/tls';

export interface HubChildren {
  readonly configMap: V1ConfigMap & KubeObject;
  readonly service: V1Service & KubeObject;
  readonly deployment: V1Deployment & KubeObject;
  readonly pdb: V1PodDisruptionBudget & KubeObject;
}

export interface HubRenderInput {
  readonly replicas: number;
  /** Used when the Hub names no image: the operator's own. */
  readonly defaultImage: string;
}

/** Labels that select a Hub's pods; fixed, since a Deployment's selector is immutable. */
export function hubSelector(hub: Hub): Record<string, string> {
  return { [LABEL.name]: 'hub-broker', [LABEL.component]: 'hub', [LABEL.hub]: hub.metadata.name ?? '' };
}

export const selectorString = (labels: Record<string, string>): string =>
  Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');

export const configMapName = (hub: Hub): string => `${hub.metadata.name}-config`;

/** Non-secret settings of `hub-broker hub`, as its environment variables. */
export function hubConfig(hub: Hub): Record<string, string> {
  const s = hub.spec;
  const env: Record<string, string> = { HUB_PORT: String(HUB_CONTAINER_PORT), HUB_LOG_LEVEL: s.logLevel };
  if (s.limits?.maxConnections !== undefined) env.HUB_MAX_CONNECTIONS = String(s.limits.maxConnections);
  if (s.limits?.tenantRate) env.HUB_TENANT_RATE = rate(s.limits.tenantRate);
  if (s.limits?.branchRate) env.HUB_BRANCH_RATE = rate(s.limits.branchRate);
  if (s.redis?.prefix !== undefined) env.REDIS_PREFIX = s.redis.prefix;
  if (s.tls) {
    env.HUB_TLS_CERT_FILE = `${TLS_MOUNT}/tls.crt`;
    env.HUB_TLS_KEY_FILE = `${TLS_MOUNT}/tls.key`;
  }
  return env;
}

/** `perSecond:burst` as the hub parses it: a plain decimal, never exponent notation. */
function rate(r: { perSecond: number; burst: number }): string {
  const perSecond = Number.isInteger(r.perSecond) ? String(r.perSecond) : r.perSecond.toFixed(6).replace(/0+$/, '').replace(/\.$/, '');
  return `${perSecond}:${r.burst}`;
}

export function configDigest(data: Record<string, string>): string {
  const canonical = JSON.stringify(Object.keys(data).sort().map((k) => [k, data[k]]));
  return createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}

function secretEnv(name: string, ref: { name: string; key: string } | undefined): V1EnvVar | undefined {
  return ref ? { name, valueFrom: { secretKeyRef: { name: ref.name, key: ref.key } } } : undefined;
}

export function renderHub(hub: Hub, input: HubRenderInput): HubChildren {
  const name = hub.metadata.name ?? '';
  const namespace = hub.metadata.namespace ?? '';
  const s = hub.spec;
  const selector = hubSelector(hub);
  const labels = childLabels(hub.metadata.labels, { ...selector, [LABEL.managedBy]: MANAGED_BY });
  const meta = (n: string) => ({ name: n, namespace, labels, ownerReferences: [controllerRef(hub, 'Hub')] });
  const config = hubConfig(hub);
  const scheme = s.tls ? 'HTTPS' : 'HTTP';

  const configMap: HubChildren['configMap'] = { apiVersion: 'v1', kind: 'ConfigMap', metadata: meta(configMapName(hub)), data: config };

  const service: HubChildren['service'] = compact({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { ...meta(name), annotations: s.service.annotations ? { ...s.service.annotations } : undefined },
    spec: {
      type: s.service.type,
      selector,
      ports: [{ name: 'http', port: s.service.port, targetPort: 'http', protocol: 'TCP' }],
    },
  });

  const env = [
    { name: 'HUB_INSTANCE_ID', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    secretEnv('DATABASE_URL', s.database.secretRef),
    secretEnv('REDIS_URL', s.redis?.secretRef),
    ...(s.redis?.sentinel
      ? [
          { name: 'REDIS_SENTINELS', value: s.redis.sentinel.sentinels.join(',') },
          { name: 'REDIS_SENTINEL_NAME', value: s.redis.sentinel.name },
          secretEnv('REDIS_PASSWORD', s.redis.sentinel.passwordSecretRef),
          secretEnv('REDIS_SENTINEL_PASSWORD', s.redis.sentinel.sentinelPasswordSecretRef),
        ]
      : []),
    secretEnv('HUB_JWT_KEYS', s.jwt.secretRef),
    secretEnv('HUB_ADMIN_TOKEN', s.adminToken?.secretRef),
    ...(s.env ?? []).map((e) => ({ name: e.name, value: e.value })),
  ].filter((e): e is V1EnvVar => e !== undefined);

  const deployment: HubChildren['deployment'] = compact({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(name),
    spec: {
      replicas: input.replicas,
      selector: { matchLabels: selector },
      // A relay drains its sockets on the way out: start the new pod before stopping an old one.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: {
          labels: selector,
          annotations: { ...(s.podAnnotations ?? {}), 'hubbroker.io/config-hash': configDigest(config) },
        },
        spec: {
          enableServiceLinks: false,
          terminationGracePeriodSeconds: 60,
          imagePullSecrets: s.imagePullSecrets?.map((p) => ({ name: p.name })),
          nodeSelector: s.nodeSelector ? { ...s.nodeSelector } : undefined,
          tolerations: s.tolerations?.map((t) => ({ ...t })),
          affinity: s.affinity ? structuredClone(s.affinity) : undefined,
          securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [
            {
              name: 'hub',
              image: s.image ?? input.defaultImage,
              imagePullPolicy: s.imagePullPolicy,
              args: ['hub'],
              ports: [{ name: 'http', containerPort: HUB_CONTAINER_PORT, protocol: 'TCP' }],
              envFrom: [{ configMapRef: { name: configMapName(hub) } }],
              env,
              readinessProbe: { httpGet: { path: '/ready', port: 'http', scheme }, periodSeconds: 5, failureThreshold: 3 },
              livenessProbe: { httpGet: { path: '/health', port: 'http', scheme }, periodSeconds: 10, failureThreshold: 6 },
              resources: s.resources ? structuredClone(s.resources) : undefined,
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'] },
              },
              volumeMounts: s.tls ? [{ name: 'tls', mountPath: TLS_MOUNT, readOnly: true }] : undefined,
            },
          ],
          volumes: s.tls ? [{ name: 'tls', secret: { secretName: s.tls.secretName } }] : undefined,
        },
      },
    },
  } as HubChildren['deployment']);

  const pdb: HubChildren['pdb'] = {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: meta(name),
    spec: { maxUnavailable: s.disruption.maxUnavailable, selector: { matchLabels: selector } },
  };

  return { configMap, service, deployment, pdb };
}
