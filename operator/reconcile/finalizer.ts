/** Adding and removing the operator's finalizer, as compare-and-set merge patches of metadata only. */
import { FINALIZER } from '../api/v1alpha1.js';
import { isConflict } from '../kube/client.js';
import type { Api, KubeObject, ResourceType } from '../kube/resources.js';

export const hasFinalizer = (obj: KubeObject): boolean => obj.metadata.finalizers?.includes(FINALIZER) ?? false;

async function patchFinalizers<T extends KubeObject>(api: Api, type: ResourceType, obj: T, change: (list: string[]) => string[]): Promise<T> {
  let current = obj;
  for (let attempt = 0; ; attempt++) {
    const finalizers = change(current.metadata.finalizers ?? []);
    try {
      return await api.mergePatch<T>(type, current.metadata.namespace ?? '', current.metadata.name ?? '', {
        // The resourceVersion makes the patch fail rather than drop a finalizer someone else just added.
        metadata: { finalizers, resourceVersion: current.metadata.resourceVersion },
      });
    } catch (err) {
      if (!isConflict(err) || attempt >= 2) throw err;
      current = await api.get<T>(type, current.metadata.namespace ?? '', current.metadata.name ?? '');
    }
  }
}

export async function addFinalizer<T extends KubeObject>(api: Api, type: ResourceType, obj: T): Promise<T> {
  if (hasFinalizer(obj)) return obj;
  return patchFinalizers(api, type, obj, (list) => (list.includes(FINALIZER) ? list : [...list, FINALIZER]));
}

export async function removeFinalizer<T extends KubeObject>(api: Api, type: ResourceType, obj: T): Promise<void> {
  if (!hasFinalizer(obj)) return;
  await patchFinalizers(api, type, obj, (list) => list.filter((f) => f !== FINALIZER));
}
