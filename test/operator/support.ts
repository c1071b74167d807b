/** Shared set-up of the operator suites: a control plane, a hub database, operators, fixtures. */
import { randomBytes } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import pg from 'pg';
import { pino } from 'pino';
import { HubStore, createPool } from '../../hub/store/index.js';
import type { Branch, Condition, Hub, Tenant } from '../../operator/api/v1alpha1.js';
import { DEFAULTS, type OperatorConfig } from '../../operator/config.js';
import { BRANCHES, HUBS, SECRETS, TENANTS, type Api, type KubeObject } from '../../operator/kube/resources.js';
import { startOperator, type Operator } from '../../operator/main.js';
import type { ControlPlane } from '../envtest/harness.js';

/** Cheap argon2 for tests; verification reads the cost from the hash, so any store checks these keys. */
export const TEST_ARGON2 = { memoryCost: 1024, timeCost: 1, parallelism: 1 };

export interface TestOperatorOptions {
  readonly identity?: string;
  readonly leaderElection?: boolean;
  readonly token?: string;
  readonly config?: Partial<OperatorConfig>;
}

/** An operator watching one namespace, with short timings, silent unless HUB_BROKER_TEST_LOG is set. */
export function startTestOperator(cp: ControlPlane, namespace: string, options: TestOperatorOptions = {}): Promise<Operator> {
  const config: OperatorConfig = {
    ...DEFAULTS,
    namespace,
    watchNamespace: namespace,
    identity: options.identity ?? `op-${randomBytes(3).toString('hex')}`,
    leaderElection: options.leaderElection ?? false,
    leaseDurationMs: 3_000,
    renewDeadlineMs: 2_000,
    retryPeriodMs: 250,
    workers: 3,
    resyncMs: 60_000,
    backoffBaseMs: 100,
    backoffCapMs: 2_000,
    metricsHost: '127.0.0.1',
    metricsPort: 0,
    hubImage: 'hub-broker:test',
    shutdownTimeoutMs: 5_000,
    ...options.config,
  };
  const level = process.env.HUB_BROKER_TEST_LOG ?? 'silent';
  return startOperator({
    config,
    kubeConfig: cp.kubeConfig(options.token),
    log: pino({ level, base: { op: config.identity } }),
    store: { argon2: TEST_ARGON2 },
    processMetrics: false,
  });
}

/** Retries `fn` until it stops throwing (assertions included); rethrows the last error at the deadline. */
export async function eventually<T>(fn: () => Promise<T> | T, timeoutMs = 20_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

export async function createSecret(api: Api, namespace: string, name: string, data: Record<string, string>): Promise<void> {
  await api.apply(SECRETS, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace },
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
  } as KubeObject);
}

/** Secrets for the database and JWT keys, then a Hub `main` (or `name`) on `databaseUrl`. */
export async function createHub(api: Api, namespace: string, databaseUrl: string, spec: Record<string, unknown> = {}, name = 'main'): Promise<Hub> {
  await createSecret(api, namespace, 'hub-db', { url: databaseUrl });
  await createSecret(api, namespace, 'hub-jwt', { keys: `k1:${randomBytes(32).toString('base64url')}` });
  return api.create<Hub>(HUBS, {
    apiVersion: 'hubbroker.io/v1alpha1',
    kind: 'Hub',
    metadata: { name, namespace },
    spec: { database: { secretRef: { name: 'hub-db' } }, jwt: { secretRef: { name: 'hub-jwt' } }, ...spec },
  } as unknown as Hub);
}

export function createTenant(api: Api, namespace: string, name: string, spec: Record<string, unknown> = {}, labels?: Record<string, string>): Promise<Tenant> {
  return api.create<Tenant>(TENANTS, {
    apiVersion: 'hubbroker.io/v1alpha1',
    kind: 'Tenant',
    metadata: { name, namespace, labels },
    spec: { hubRef: { name: 'main' }, ...spec },
  } as unknown as Tenant);
}

export function createBranch(api: Api, namespace: string, name: string, tenant: string, spec: Record<string, unknown> = {}, labels?: Record<string, string>): Promise<Branch> {
  return api.create<Branch>(BRANCHES, {
    apiVersion: 'hubbroker.io/v1alpha1',
    kind: 'Branch',
    metadata: { name, namespace, labels },
    spec: { tenantRef: { name: tenant }, ...spec },
  } as unknown as Branch);
}

export const ready = (obj: { status?: { conditions?: readonly Condition[] } } | null): Condition | undefined =>
  obj?.status?.conditions?.find((c) => c.type === 'Ready');

/** Waits until the object's Ready condition has `status` (and `reason`, if given) for its current generation. */
export async function waitReady<T extends KubeObject & { status?: { conditions?: readonly Condition[]; observedGeneration?: number } }>(
  api: Api,
  type: typeof HUBS,
  namespace: string,
  name: string,
  status: 'True' | 'False' = 'True',
  reason?: string,
  timeoutMs = 20_000,
): Promise<T> {
  return eventually(async () => {
    const obj = await api.get<T>(type, namespace, name);
    const c = ready(obj);
    if (!c || c.status !== status || (reason !== undefined && c.reason !== reason) || obj.status?.observedGeneration !== obj.metadata.generation) {
      throw new Error(`${type.kind} ${name}: Ready is ${c ? `${c.status}/${c.reason}: ${c.message}` : 'absent'}, want ${status}${reason ? `/${reason}` : ''}`);
    }
    return obj;
  }, timeoutMs);
}

export async function readSecret(api: Api, namespace: string, name: string): Promise<Record<string, string> | null> {
  const s = await api.find<V1Secret & KubeObject>(SECRETS, namespace, name);
  if (!s) return null;
  return Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
}

/** A HubStore on the test database, to look at what the operator did. */
export function inspectStore(url: string): HubStore {
  return new HubStore(createPool(url, { max: 2 }), { argon2: TEST_ARGON2 });
}

export async function schemaExists(url: string, schema: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const { rowCount } = await c.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
    return rowCount === 1;
  } finally {
    await c.end();
  }
}

/** Reconciles everything again and waits until the operator is idle. */
export async function reconcileAllAgain(op: Operator): Promise<void> {
  const before = await totalReconciles(op);
  const n = op.controller.enqueueAll();
  await eventually(async () => {
    if ((await totalReconciles(op)) < before + n || !op.controller.idle()) throw new Error('operator still busy');
  });
}

async function totalReconciles(op: Operator): Promise<number> {
  const m = await op.metrics.reconciles.get();
  return m.values.reduce((sum, v) => sum + v.value, 0);
}
