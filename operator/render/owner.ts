/** Owner references: children name their Hub or Branch as controller, for garbage collection. */
import type { KubeObject, OwnerReference } from '../kube/resources.js';
import { API_VERSION } from '../kube/resources.js';

export function controllerRef(owner: KubeObject, kind: 'Hub' | 'Tenant' | 'Branch'): OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind,
    name: owner.metadata.name ?? '',
    uid: owner.metadata.uid ?? '',
    controller: true,
  };
}

/** Drops `undefined` members (and empty objects and arrays) so applied objects stay minimal and stable. */
export function compact<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v) => compact(v) as unknown) as T;
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (v === undefined) continue;
    const c = compact(v);
    if (typeof c === 'object' && c !== null && (Array.isArray(c) ? c.length === 0 : Object.keys(c).length === 0)) continue;
    out[k] = c;
  }
  return out as T;
}
