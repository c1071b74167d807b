/** The API types the operator reads and writes, and typed calls on them. */
import type { KubeClient } from './client.js';
import { isNotFound } from './client.js';

export interface ResourceType {
  /** '' for the core group. */
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly kind: string;
  readonly namespaced: boolean;
}

const rt = (group: string, version: string, plural: string, kind: string, namespaced = true): ResourceType => ({
  group,
  version,
  plural,
  kind,
  namespaced,
});

export const GROUP = 'hubbroker.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

export const HUBS = rt(GROUP, VERSION, 'hubs', 'Hub');
export const TENANTS = rt(GROUP, VERSION, 'tenants', 'Tenant');
export const BRANCHES = rt(GROUP, VERSION, 'branches', 'Branch');
export const SECRETS = rt('', 'v1', 'secrets', 'Secret');
export const CONFIGMAPS = rt('', 'v1', 'configmaps', 'ConfigMap');
export const SERVICES = rt('', 'v1', 'services', 'Service');
export const EVENTS = rt('', 'v1', 'events', 'Event');
export const NAMESPACES = rt('', 'v1', 'namespaces', 'Namespace', false);
export const DEPLOYMENTS = rt('apps', 'v1', 'deployments', 'Deployment');
export const PDBS = rt('policy', 'v1', 'poddisruptionbudgets', 'PodDisruptionBudget');
export const LEASES = rt('coordination.k8s.io', 'v1', 'leases', 'Lease');

export const apiVersionOf = (t: ResourceType): string => (t.group === '' ? t.version : `${t.group}/${t.version}`);

/** `/api/v1/namespaces/ns/secrets/name/sub` and the like; omit `namespace` for every namespace. */
export function resourcePath(t: ResourceType, namespace?: string, name?: string, subresource?: string): string {
  let p = t.group === '' ? `/api/${t.version}` : `/apis/${t.group}/${t.version}`;
  if (t.namespaced && namespace !== undefined) p += `/namespaces/${encodeURIComponent(namespace)}`;
  p += `/${t.plural}`;
  if (name !== undefined) p += `/${encodeURIComponent(name)}`;
  if (subresource !== undefined) p += `/${subresource}`;
  return p;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
}

export interface ObjectList<T> {
  metadata: { resourceVersion?: string; continue?: string };
  items: T[];
}

/** The identity of the operator's writes: the owner of every field it sets with server-side apply. */
export const FIELD_MANAGER = 'hub-broker-operator';

/** Typed calls over a KubeClient. */
export class Api {
  constructor(
    readonly client: KubeClient,
    /** Recorded as the writer of every field this Api sets. */
    readonly fieldManager: string = FIELD_MANAGER,
  ) {}

  get<T extends KubeObject>(t: ResourceType, namespace: string, name: string): Promise<T> {
    return this.client.request<T>({ method: 'GET', path: resourcePath(t, namespace, name) });
  }

  /** A live read; null when the object does not exist. */
  async find<T extends KubeObject>(t: ResourceType, namespace: string, name: string): Promise<T | null> {
    try {
      return await this.get<T>(t, namespace, name);
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  list<T extends KubeObject>(
    t: ResourceType,
    namespace?: string,
    query: { labelSelector?: string; limit?: number; continue?: string; resourceVersion?: string } = {},
  ): Promise<ObjectList<T>> {
    return this.client.request<ObjectList<T>>({ method: 'GET', path: resourcePath(t, namespace), query });
  }

  create<T extends KubeObject>(t: ResourceType, obj: T): Promise<T> {
    return this.client.request<T>({ method: 'POST', path: resourcePath(t, obj.metadata.namespace), body: obj });
  }

  /** PUT; `obj.metadata.resourceVersion` makes it a compare-and-set (409 when stale). */
  replace<T extends KubeObject>(t: ResourceType, obj: T): Promise<T> {
    return this.client.request<T>({
      method: 'PUT',
      path: resourcePath(t, obj.metadata.namespace, obj.metadata.name),
      body: obj,
    });
  }

  /** Server-side apply with the operator's field manager; forced, since the operator owns these fields. */
  apply<T extends KubeObject>(t: ResourceType, obj: T, subresource?: 'status'): Promise<T> {
    return this.client.request<T>({
      method: 'PATCH',
      path: resourcePath(t, obj.metadata.namespace, obj.metadata.name, subresource),
      query: { fieldManager: this.fieldManager, force: true },
      body: { apiVersion: apiVersionOf(t), kind: t.kind, ...obj },
      contentType: 'application/apply-patch+yaml',
    });
  }

  mergePatch<T extends KubeObject>(t: ResourceType, namespace: string, name: string, patch: unknown, subresource?: 'status'): Promise<T> {
    return this.client.request<T>({
      method: 'PATCH',
      path: resourcePath(t, namespace, name, subresource),
      query: { fieldManager: this.fieldManager },
      body: patch,
      contentType: 'application/merge-patch+json',
    });
  }

  async delete(t: ResourceType, namespace: string, name: string): Promise<void> {
    try {
      await this.client.request({ method: 'DELETE', path: resourcePath(t, namespace, name) });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}
