/** Adding and removing the operator's finalizer, as compare-and-set merge patches of metadata only. */
import { FINALIZER } from '../api/v1alpha1.js';
import type { Api, KubeObject, ResourceType } from '../kube/resources.js';

export const hasFinalizer = (obj: KubeObject): boolean => obj.metadata.finalizers?.includes(FINALIZER) ?? false;

/**
 * A merge patch of metadata.finalizers with the object's resourceVersion as precondition: a 409
 * (someone changed the object meanwhile) fails the reconcile, which is retried from the updated
 * cache, rather than dropping a finalizer someone else just added.
 */
function patchFinalizers<T extends KubeObject>(api: Api, type: ResourceType, obj: T, finalizers: string[]): Promise<T> {
  return api.mergePatch<T>(type, obj.metadata.namespace ?? '', obj.metadata.name ?? '', {
    metadata: { finalizers, resourceVersion: obj.metadata.resourceVersion },
  });
}

export async function addFinalizer<T extends KubeObject>(api: Api, type: ResourceType, obj: T): Promise<T> {
  if (hasFinalizer(obj)) return obj;
  return patchFinalizers(api, type, obj, [...(obj.metadata.finalizers ?? []), FINALIZER]);
}

export async function removeFinalizer<T extends KubeObject>(api: Api, type: ResourceType, obj: T): Promise<void> {
  if (!hasFinalizer(obj)) return;
  await patchFinalizers(api, type, obj, (obj.metadata.finalizers ?? []).filter((f) => f !== FINALIZER));
}
