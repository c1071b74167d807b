/** The hub database migrated (once per connection pool), announced as an Event on the Hub. */
import type { HubStore } from '../../hub/store/index.js';
import type { Hub } from '../api/v1alpha1.js';
import type { ReconcileContext } from './context.js';

export async function migrateHubDatabase(ctx: ReconcileContext, hub: Hub): Promise<HubStore> {
  const { store, report, fresh } = await ctx.stores.migrate(hub);
  // Whichever reconcile (the Hub's or one of its Tenants') ran the migration tells the Hub.
  if (fresh && report.applied.length + report.tenantsUpgraded > 0) {
    const versions = report.applied.join(', ') || 'none';
    ctx.events.record(hub, 'Normal', 'Migrated', `hub database migrated (versions ${versions}; ${report.tenantsUpgraded} tenant schemas upgraded)`);
  }
  return store;
}
