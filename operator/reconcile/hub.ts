/**
 * Hub: the hub database migrated, and the Deployment (replicas from the number of connecting
 * Branches), Service, ConfigMap and PodDisruptionBudget applied with server-side apply.
 */
import { Reason } from '../api/reasons.js';
import type { Hub, HubStatus } from '../api/v1alpha1.js';
import { isNotFound } from '../kube/client.js';
import { CONFIGMAPS, DEPLOYMENTS, HUBS, PDBS, SERVICES } from '../kube/resources.js';
import { hubEndpoint } from '../policy/endpoint.js';
import { connectingBranches, desiredReplicas } from '../policy/replicas.js';
import { hubSelector, renderHub, selectorString } from '../render/hub.js';
import type { Outcome, ReconcileContext } from './context.js';
import { toFailure, type ReconcileFailure } from './errors.js';
import { addFinalizer, hasFinalizer, removeFinalizer } from './finalizer.js';
import { migrateHubDatabase } from './migrate.js';
import { publishStatus } from './status.js';

export async function reconcileHub(ctx: ReconcileContext, namespace: string, name: string): Promise<Outcome | void> {
  let hub = ctx.caches.hubs.get(namespace, name);
  if (!hub) return;
  if (hub.metadata.deletionTimestamp) return finalizeHub(ctx, hub);
  try {
    hub = await addFinalizer(ctx.api, HUBS, hub);
  } catch (err) {
    if (isNotFound(err)) return;
    throw err;
  }

  const counts = connectingBranches(hub, ctx.caches.tenants.list(), ctx.caches.branches.list());
  const decision = desiredReplicas(hub.spec.replicas, counts.branches);
  const fields = {
    replicas: decision.replicas,
    readyReplicas: hub.status?.readyReplicas ?? 0,
    selector: selectorString(hubSelector(hub)),
    branches: counts.branches,
    tenants: counts.tenants,
    endpoint: hubEndpoint(hub),
  };

  let failure: ReconcileFailure | undefined;
  try {
    await migrateHubDatabase(ctx, hub);
  } catch (err) {
    failure = toFailure(err);
  }

  // Children do not depend on the operator reaching the database; keep them current regardless.
  try {
    const children = renderHub(hub, { replicas: decision.replicas, defaultImage: ctx.defaultImage });
    await ctx.api.apply(CONFIGMAPS, children.configMap);
    await ctx.api.apply(SERVICES, children.service);
    await ctx.api.apply(PDBS, children.pdb);
    const deployment = await ctx.api.apply(DEPLOYMENTS, children.deployment);
    fields.readyReplicas = deployment.status?.readyReplicas ?? 0;
  } catch (err) {
    failure ??= toFailure(err);
  }

  const cap = decision.capped ? `; ${decision.needed} needed for ${counts.branches} branches, capped at spec.replicas.max` : '';
  const ready = failure
    ? { status: 'False' as const, reason: failure.reason, message: failure.message }
    : fields.readyReplicas < decision.replicas
      ? { status: 'False' as const, reason: Reason.Progressing, message: `${fields.readyReplicas}/${decision.replicas} replicas ready${cap}` }
      : { status: 'True' as const, reason: Reason.Ready, message: `${fields.readyReplicas}/${decision.replicas} replicas ready, ${counts.branches} branches${cap}` };
  await publishStatus<HubStatus>(ctx, HUBS, hub, fields, ready);
  if (failure) throw failure;
}

async function finalizeHub(ctx: ReconcileContext, hub: Hub): Promise<Outcome | void> {
  if (!hasFinalizer(hub)) return;
  const remaining = ctx.caches.tenants
    .list()
    .filter((t) => t.metadata.namespace === hub.metadata.namespace && t.spec.hubRef.name === hub.metadata.name)
    .map((t) => t.metadata.name ?? '')
    .sort();
  if (remaining.length > 0) {
    // Tenant deletions enqueue the Hub again; no retry needed meanwhile.
    const shown = remaining.slice(0, 5).join(', ') + (remaining.length > 5 ? ', …' : '');
    const { conditions: _c, observedGeneration: _g, ...kept } = hub.status ?? {};
    await publishStatus<HubStatus>(ctx, HUBS, hub, kept, {
      status: 'False',
      reason: Reason.TenantsRemaining,
      message: `waiting for ${remaining.length} Tenants to be deleted first (${shown})`,
    });
    return;
  }
  await ctx.stores.release(hub);
  try {
    await removeFinalizer(ctx.api, HUBS, hub);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}
