/** What every reconciler works with: API access, the informer caches, hub databases, Events. */
import type { V1Deployment } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Branch, Hub, Tenant } from '../api/v1alpha1.js';
import type { HubStores } from '../hub-stores.js';
import type { Api, KubeObject } from '../kube/resources.js';
import type { EventSink } from '../runtime/events.js';
import type { Informer } from '../runtime/informer.js';

export interface Caches {
  readonly hubs: Informer<Hub>;
  readonly tenants: Informer<Tenant>;
  readonly branches: Informer<Branch>;
  /** Only the Deployments the operator manages. */
  readonly deployments: Informer<V1Deployment & KubeObject>;
}

export interface ReconcileContext {
  readonly api: Api;
  readonly caches: Caches;
  readonly stores: HubStores;
  readonly events: EventSink;
  readonly log: Logger;
  /** Image of Hubs that name none: the operator's own. */
  readonly defaultImage: string;
  readonly now: () => Date;
  /** Queues another object whose status depends on what this reconcile changed. */
  readonly enqueue: (kind: 'Hub' | 'Tenant' | 'Branch', namespace: string, name: string) => void;
  /** Status last written per object uid, so a lagging cache does not cause a second write. */
  readonly published: Map<string, { basedOn: string | undefined; status: unknown }>;
}

/** What a reconcile asks of the queue when it succeeds. */
export interface Outcome {
  readonly requeueAfterMs?: number;
}

export type Reconcile = (ctx: ReconcileContext, namespace: string, name: string) => Promise<Outcome | void>;
