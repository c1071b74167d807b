/**
 * Wires informers to one work queue and the queue to the reconcilers. Informers run on every
 * instance (a standby has a warm cache); workers run only on the leader.
 */
import type { V1Deployment } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { LABEL, MANAGED_BY, type Branch, type Hub, type Tenant } from '../api/v1alpha1.js';
import type { HubStores } from '../hub-stores.js';
import { BRANCHES, DEPLOYMENTS, HUBS, TENANTS, type Api, type KubeObject } from '../kube/resources.js';
import type { OperatorMetrics } from '../metrics.js';
import type { BackoffPolicy } from '../policy/backoff.js';
import { jsonEqual } from '../policy/conditions.js';
import { reconcileBranch } from '../reconcile/branch.js';
import type { Caches, Reconcile, ReconcileContext } from '../reconcile/context.js';
import { ReconcileFailure } from '../reconcile/errors.js';
import { reconcileHub } from '../reconcile/hub.js';
import { reconcileTenant } from '../reconcile/tenant.js';
import type { EventSink } from './events.js';
import { Informer, type InformerEventType } from './informer.js';
import { WorkQueue } from './queue.js';

export type Kind = 'Hub' | 'Tenant' | 'Branch';

const RECONCILERS: Record<Kind, Reconcile> = { Hub: reconcileHub, Tenant: reconcileTenant, Branch: reconcileBranch };

export interface ControllerOptions {
  readonly api: Api;
  readonly log: Logger;
  readonly metrics: OperatorMetrics;
  readonly events: EventSink;
  readonly stores: HubStores;
  readonly defaultImage: string;
  /** Watch only this namespace; default all. */
  readonly watchNamespace?: string;
  readonly workers: number;
  /** Relist period of the informers; every object is reconciled again this often. */
  readonly resyncMs: number;
  /** Retry delays after a failed reconcile. */
  readonly backoff: BackoffPolicy;
  /** Restart delays of a failed list/watch. */
  readonly informerBackoff: BackoffPolicy;
}

const keyOf = (kind: Kind, namespace: string, name: string): string => `${kind}/${namespace}/${name}`;

function parseKey(key: string): { kind: Kind; namespace: string; name: string } {
  const [kind, namespace, name] = key.split('/');
  return { kind: kind as Kind, namespace: namespace ?? '', name: name ?? '' };
}

/** Whether an update changed something a reconcile acts on (not just status or resourceVersion). */
function meaningful(type: InformerEventType, obj: KubeObject, old: KubeObject | undefined): boolean {
  if (type !== 'update' || !old) return true;
  const m = obj.metadata;
  const o = old.metadata;
  return (
    m.generation !== o.generation ||
    m.deletionTimestamp !== o.deletionTimestamp ||
    !jsonEqual(m.labels, o.labels) ||
    !jsonEqual(m.finalizers, o.finalizers)
  );
}

export class Controller {
  readonly caches: Caches;
  readonly queue: WorkQueue;
  private readonly ctx: ReconcileContext;
  private workerStop: AbortController | undefined;
  private workerLoops: Promise<void>[] = [];
  private readonly log: Logger;

  constructor(private readonly options: ControllerOptions) {
    const { api, watchNamespace: namespace, resyncMs, informerBackoff: backoff, metrics } = options;
    this.log = options.log;
    const informer = <T extends KubeObject>(type: typeof HUBS, labelSelector?: string) =>
      new Informer<T>({
        api,
        type,
        namespace,
        labelSelector,
        resyncMs,
        backoff,
        log: this.log,
        onRestart: (cause) => metrics.informerRestarts.inc({ resource: type.plural, cause }),
      });
    this.caches = {
      hubs: informer<Hub>(HUBS),
      tenants: informer<Tenant>(TENANTS),
      branches: informer<Branch>(BRANCHES),
      deployments: informer<V1Deployment & KubeObject>(DEPLOYMENTS, `${LABEL.managedBy}=${MANAGED_BY},${LABEL.component}=hub`),
    };
    this.queue = new WorkQueue({ backoff: options.backoff, onDepth: (n) => metrics.queueDepth.set(n) });
    this.ctx = {
      api,
      caches: this.caches,
      stores: options.stores,
      events: options.events,
      log: this.log,
      defaultImage: options.defaultImage,
      now: () => new Date(),
      enqueue: (kind, namespace, name) => this.queue.add(keyOf(kind, namespace, name)),
      published: new Map(),
    };
    this.route();
  }

  /** Which keys an informer event makes stale. */
  private route(): void {
    const { hubs, tenants, branches, deployments } = this.caches;
    for (const inf of [hubs, tenants, branches] as unknown as Informer<KubeObject>[]) {
      inf.on((type, obj) => {
        if (type === 'delete') this.ctx.published.delete(obj.metadata.uid ?? '');
      });
    }
    const add = (kind: Kind, ns: string | undefined, name: string | undefined) => {
      if (ns !== undefined && name !== undefined) this.queue.add(keyOf(kind, ns, name));
    };
    const tenantsOfHub = (ns: string | undefined, hub: string | undefined) =>
      tenants.list().filter((t) => t.metadata.namespace === ns && t.spec.hubRef.name === hub);
    const branchesOfTenant = (ns: string | undefined, tenant: string | undefined) =>
      branches.list().filter((b) => b.metadata.namespace === ns && b.spec.tenantRef.name === tenant);

    hubs.on((type, hub, old) => {
      const { namespace: ns, name } = hub.metadata;
      if (meaningful(type, hub, old)) add('Hub', ns, name);
      // Tenants may wait for this Hub; branches' Secrets carry its URL.
      if (type === 'resync' || !meaningful(type, hub, old)) return;
      for (const t of tenantsOfHub(ns, name)) {
        add('Tenant', ns, t.metadata.name);
        for (const b of branchesOfTenant(ns, t.metadata.name)) add('Branch', ns, b.metadata.name);
      }
    });
    tenants.on((type, tenant, old) => {
      const { namespace: ns, name } = tenant.metadata;
      if (!meaningful(type, tenant, old)) return;
      add('Tenant', ns, name);
      if (type === 'resync') return;
      add('Hub', ns, tenant.spec.hubRef.name); // branch count (suspension), deletion
      for (const b of branchesOfTenant(ns, name)) add('Branch', ns, b.metadata.name);
    });
    branches.on((type, branch, old) => {
      const { namespace: ns, name } = branch.metadata;
      if (!meaningful(type, branch, old)) return;
      add('Branch', ns, name);
      if (type === 'resync') return;
      const tenant = tenants.get(ns ?? '', branch.spec.tenantRef.name);
      add('Tenant', ns, branch.spec.tenantRef.name); // branch count
      if (tenant) add('Hub', ns, tenant.spec.hubRef.name); // replicas
      // Another branch may be waiting for a free place under maxBranches.
      if (type === 'delete') for (const b of branchesOfTenant(ns, branch.spec.tenantRef.name)) add('Branch', ns, b.metadata.name);
    });
    deployments.on((type, deployment, old) => {
      if (type === 'resync') return;
      if (type === 'update' && old && jsonEqual(deployment.status, old.status) && !meaningful(type, deployment, old)) return;
      const owner = deployment.metadata.ownerReferences?.find((r) => r.kind === 'Hub' && r.controller);
      add('Hub', deployment.metadata.namespace, owner?.name ?? deployment.metadata.labels?.[LABEL.hub]);
    });
  }

  startInformers(): void {
    for (const inf of Object.values(this.caches) as Informer<KubeObject>[]) inf.start();
  }

  synced(): boolean {
    return (Object.values(this.caches) as Informer<KubeObject>[]).every((i) => i.hasSynced());
  }

  async waitForSync(timeoutMs = 60_000): Promise<void> {
    await Promise.all((Object.values(this.caches) as Informer<KubeObject>[]).map((i) => i.waitForSync(timeoutMs)));
  }

  /** Called on becoming leader: reconcile everything once, then whatever changes. */
  startWorkers(): void {
    if (this.workerStop) return;
    const stop = new AbortController();
    this.workerStop = stop;
    this.workerLoops = Array.from({ length: this.options.workers }, () => this.work(stop.signal));
    void this.waitForSync().then(
      () => {
        if (!stop.signal.aborted) this.enqueueAll();
      },
      (err: unknown) => this.log.error({ err: (err as Error).message }, 'caches did not sync'),
    );
  }

  /** Queues every cached Hub, Tenant and Branch. */
  enqueueAll(): number {
    const keys = [
      ...this.caches.hubs.list().map((o) => keyOf('Hub', o.metadata.namespace ?? '', o.metadata.name ?? '')),
      ...this.caches.tenants.list().map((o) => keyOf('Tenant', o.metadata.namespace ?? '', o.metadata.name ?? '')),
      ...this.caches.branches.list().map((o) => keyOf('Branch', o.metadata.namespace ?? '', o.metadata.name ?? '')),
    ];
    for (const k of keys) this.queue.add(k);
    return keys.length;
  }

  /** Nothing queued and nothing in flight. */
  idle(): boolean {
    return this.queue.length === 0 && this.queue.busy === 0;
  }

  /** Called on losing leadership or shutting down: finish the reconciles in flight, take no more. */
  async stopWorkers(): Promise<void> {
    this.workerStop?.abort();
    this.workerStop = undefined;
    await Promise.all(this.workerLoops);
    this.workerLoops = [];
  }

  private async work(signal: AbortSignal): Promise<void> {
    // Reconciles start only once the caches are full, or "not found" would mean "not yet listed".
    while (!signal.aborted && !this.synced()) await new Promise((r) => setTimeout(r, 50));
    for (;;) {
      const key = await this.queue.get(signal);
      if (key === undefined) return;
      try {
        await this.process(key);
      } finally {
        this.queue.done(key);
      }
    }
  }

  private async process(key: string): Promise<void> {
    const { kind, namespace, name } = parseKey(key);
    const { metrics } = this.options;
    const end = metrics.reconcileDuration.startTimer({ kind });
    try {
      const outcome = await RECONCILERS[kind](this.ctx, namespace, name);
      metrics.reconciles.inc({ kind, result: 'success' });
      this.queue.forget(key);
      if (outcome?.requeueAfterMs !== undefined) this.queue.addAfter(key, outcome.requeueAfterMs);
    } catch (err) {
      const reason = err instanceof ReconcileFailure ? err.reason : 'Unexpected';
      metrics.reconciles.inc({ kind, result: 'error' });
      metrics.reconcileErrors.inc({ kind, reason });
      metrics.queueRetries.inc({ kind });
      const delay = this.queue.addRateLimited(key);
      this.log.warn({ kind, namespace, name, reason, err: (err as Error).message, retryInMs: Math.round(delay) }, 'reconcile failed');
    } finally {
      end();
    }
  }

  async stop(): Promise<void> {
    this.queue.shutDown();
    await this.stopWorkers();
    await Promise.all((Object.values(this.caches) as Informer<KubeObject>[]).map((i) => i.stop()));
  }
}
