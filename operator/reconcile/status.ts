/**
 * Writes a resource's status, and only when it changed: compare first, then server-side apply
 * on the status subresource. The Ready condition's transitions become Events.
 */
import type { CommonStatus } from '../api/v1alpha1.js';
import type { KubeObject, ResourceType } from '../kube/resources.js';
import { findCondition, jsonEqual, setCondition, type ConditionInput } from '../policy/conditions.js';
import { compact } from '../render/owner.js';
import type { ReconcileContext } from './context.js';

export const READY = 'Ready';

export async function publishStatus<S extends CommonStatus>(
  ctx: ReconcileContext,
  type: ResourceType,
  obj: KubeObject & { status?: S },
  fields: Omit<S, 'conditions' | 'observedGeneration'>,
  ready: ConditionInput,
): Promise<boolean> {
  const generation = obj.metadata.generation;
  const conditions = setCondition(obj.status?.conditions, READY, ready, generation, ctx.now());
  const status = compact({ ...fields, observedGeneration: generation, conditions });
  if (jsonEqual(obj.status ?? {}, status)) return false;
  const uid = obj.metadata.uid ?? '';
  const last = ctx.published.get(uid);
  // The cache has not yet seen our previous write of this very status.
  if (last && last.basedOn === obj.metadata.resourceVersion && jsonEqual(last.status, status)) return false;
  await ctx.api.apply(type, { metadata: { name: obj.metadata.name, namespace: obj.metadata.namespace }, status } as KubeObject, 'status');
  ctx.published.set(uid, { basedOn: obj.metadata.resourceVersion, status });
  const prev = findCondition(obj.status?.conditions, READY);
  if (!prev || prev.status !== ready.status || prev.reason !== ready.reason) {
    ctx.events.record(obj, ready.status === 'True' ? 'Normal' : 'Warning', ready.reason, ready.message);
  }
  return true;
}
