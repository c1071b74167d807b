/** Tenant: its row and schema in the hub database; its finalizer applies the deletion policy. */
import { Reason } from '../api/reasons.js';
import type { Hub, Tenant, TenantStatus } from '../api/v1alpha1.js';
import { isNotFound } from '../kube/client.js';
import { TENANTS } from '../kube/resources.js';
import { storeDeletionPolicy, storeTenantSpec } from '../policy/tenant-spec.js';
import type { Outcome, ReconcileContext } from './context.js';
import { ReconcileFailure, toFailure } from './errors.js';
import { addFinalizer, hasFinalizer, removeFinalizer } from './finalizer.js';
import { migrateHubDatabase } from './migrate.js';
import { publishSchemaChanges } from './schema-changes.js';
import { publishStatus } from './status.js';

export async function reconcileTenant(ctx: ReconcileContext, namespace: string, name: string): Promise<Outcome | void> {
  let tenant = ctx.caches.tenants.get(namespace, name);
  if (!tenant) return;
  if (tenant.metadata.deletionTimestamp) return finalizeTenant(ctx, tenant);
  try {
    tenant = await addFinalizer(ctx.api, TENANTS, tenant);
  } catch (err) {
    if (isNotFound(err)) return;
    throw err;
  }
  try {
    await ensureTenant(ctx, tenant);
  } catch (err) {
    const failure = toFailure(err);
    const s = tenant.status ?? {};
    await publishStatus<TenantStatus>(ctx, TENANTS, tenant, { schema: s.schema, branches: s.branches, schemaVersion: s.schemaVersion }, {
      status: 'False',
      reason: failure.reason,
      message: failure.message,
    });
    throw failure;
  }
}

function hubOf(ctx: ReconcileContext, tenant: Tenant): Hub | undefined {
  return ctx.caches.hubs.get(tenant.metadata.namespace ?? '', tenant.spec.hubRef.name);
}

function branchesOf(ctx: ReconcileContext, tenant: Tenant) {
  const ns = tenant.metadata.namespace;
  return ctx.caches.branches.list().filter((b) => b.metadata.namespace === ns && b.spec.tenantRef.name === tenant.metadata.name);
}

async function ensureTenant(ctx: ReconcileContext, tenant: Tenant): Promise<void> {
  const id = tenant.metadata.name ?? '';
  const hub = hubOf(ctx, tenant);
  if (!hub) throw new ReconcileFailure(Reason.HubNotFound, `Hub ${tenant.spec.hubRef.name} not found in namespace ${tenant.metadata.namespace}`);
  // The Hub's reconcile migrates too; a Tenant may get here first.
  const store = await migrateHubDatabase(ctx, hub);
  const { tenant: row, created, changed } = await store.ensureTenant(id, storeTenantSpec(tenant.spec));
  if (created) ctx.events.record(tenant, 'Normal', 'TenantCreated', `tenant ${id} and its schema ${row.schemaName} created in the hub database`);
  else if (changed) ctx.events.record(tenant, 'Normal', 'TenantUpdated', `tenant ${id} updated in the hub database (${row.status})`);
  const before = tenant.status?.schemaVersion ?? 0;
  const schemaVersion = await publishSchemaChanges(ctx, store, tenant, row);
  // Their status shows the version they reached against the latest.
  if (schemaVersion !== before) for (const b of branchesOf(ctx, tenant)) ctx.enqueue('Branch', b.metadata.namespace ?? '', b.metadata.name ?? '');
  const branches = await store.countBranches(id);
  const limit = row.maxBranches === null ? '' : ` of at most ${row.maxBranches}`;
  const version = schemaVersion > 0 ? `, schema version ${schemaVersion}` : '';
  await publishStatus<TenantStatus>(ctx, TENANTS, tenant, { schema: row.schemaName, branches, schemaVersion }, {
    status: 'True',
    reason: tenant.spec.suspended ? Reason.Suspended : Reason.Ready,
    message: tenant.spec.suspended
      ? `suspended: its branches cannot sign in (schema ${row.schemaName}, ${branches} branches${limit}${version})`
      : `schema ${row.schemaName}, ${branches} branches${limit}${version}`,
  });
}

async function finalizeTenant(ctx: ReconcileContext, tenant: Tenant): Promise<Outcome | void> {
  if (!hasFinalizer(tenant)) return;
  const id = tenant.metadata.name ?? '';
  const policy = tenant.spec.deletionPolicy;
  try {
    const hub = hubOf(ctx, tenant);
    if (!hub) {
      // A Hub waits for its Tenants, so this takes a forced deletion; leave the data alone.
      ctx.events.record(tenant, 'Warning', 'HubNotFound', `Hub ${tenant.spec.hubRef.name} is gone: tenant ${id} left in its database as it was`);
    } else {
      const store = await ctx.stores.forHub(hub, { orLast: true });
      const result = await store.deleteTenant(id, storeDeletionPolicy(policy));
      if (result.deleted) {
        ctx.events.record(
          tenant,
          'Normal',
          'TenantDeleted',
          `tenant ${id} removed from the hub database; its schema was ${result.schemaDropped ? 'dropped' : 'kept'} (deletionPolicy ${policy})`,
        );
      }
    }
    await removeFinalizer(ctx.api, TENANTS, tenant);
  } catch (err) {
    if (isNotFound(err)) return;
    const failure = toFailure(err);
    const s = tenant.status ?? {};
    await publishStatus<TenantStatus>(ctx, TENANTS, tenant, { schema: s.schema, branches: s.branches, schemaVersion: s.schemaVersion }, {
      status: 'False',
      reason: Reason.Deleting,
      message: `cannot apply deletionPolicy ${policy} yet (${failure.reason}): ${failure.message}`,
    }).catch(() => undefined);
    throw failure;
  }
}
