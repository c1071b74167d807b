/**
 * A Tenant's `spec.schemaChanges`: publishes, in the spec's order, the ones the hub has not
 * published yet (operator/policy/schema-changes.ts decides), through the same checks as
 * `hub-broker schema apply`. Hub instances find them at their next log-head poll.
 */
import type { HubStore, Tenant as TenantRow } from '../../hub/store/index.js';
import { StoreError } from '../../hub/store/index.js';
import { listSchemaChanges, publishSchemaChange } from '../../hub/schema/publish.js';
import { Reason } from '../api/reasons.js';
import type { Tenant } from '../api/v1alpha1.js';
import { modifiedMessage, planSchemaChanges } from '../policy/schema-changes.js';
import type { ReconcileContext } from './context.js';
import { ReconcileFailure } from './errors.js';

/** The tenant's schema version after publishing; throws a failure naming the change the hub refused. */
export async function publishSchemaChanges(ctx: ReconcileContext, store: HubStore, tenant: Tenant, row: TenantRow): Promise<number> {
  const published = await listSchemaChanges(store.pool, row);
  const plan = planSchemaChanges(tenant.spec.schemaChanges ?? [], published);
  if (plan.kind === 'modified') throw new ReconcileFailure(Reason.SchemaChangeModified, modifiedMessage(plan.changes));
  let version = plan.latest;
  for (const change of plan.changes) {
    let p;
    try {
      p = await publishSchemaChange(store.pool, null, row, {
        sql: change.sql,
        name: change.name,
        description: change.description ?? null,
        allowUnknownTables: false,
        by: 'operator',
      });
    } catch (err) {
      // Later changes may need this one: stop here.
      if (err instanceof StoreError && (err.code === 'invalid' || err.code === 'conflict')) {
        throw new ReconcileFailure(Reason.SchemaChangeRefused, `spec.schemaChanges "${change.name}" refused by the hub: ${err.message}`, { cause: err });
      }
      throw err;
    }
    version = Math.max(version, p.version);
    if (!p.created) continue;
    await store.audit({ tenantId: row.id, event: 'schema.publish', source: 'operator', detail: { version: p.version, offset: p.offset, name: change.name, statements: p.statements.map((s) => s.kind) } });
    ctx.events.record(tenant, 'Normal', 'SchemaChangePublished', `schema change "${change.name}" published as version ${p.version} (${p.statements.map((s) => s.kind).join(', ')})`);
  }
  return version;
}
