/**
 * Where a tenant's branches are connected, for admin answers. The engine's location registry
 * (Redis with several instances) knows every instance's connections; while it cannot be reached
 * the answer still comes, from the database and this instance's own sockets, with a note.
 */
import type { Location } from '../../engine/types.js';
import type { HubContext } from '../../context.js';

export interface Locations {
  readonly where: ReadonlyMap<string, Location>;
  /** False when the registry could not be reached: only this instance's connections are known. */
  readonly complete: boolean;
  /** Why the answer is partial, for the reply. */
  readonly note?: string;
}

export async function locateTenant(ctx: Pick<HubContext, 'engine' | 'registry' | 'instanceId' | 'metrics' | 'logger'>, tenant: string): Promise<Locations> {
  try {
    return { where: await ctx.engine.locate(tenant), complete: true };
  } catch (err) {
    ctx.metrics.registryUnavailable.inc();
    ctx.logger.warn({ err: (err as Error).message, tenant }, 'location registry unreachable; answering from this instance');
    const where = new Map<string, Location>();
    for (const c of ctx.registry.ofTenant(tenant)) where.set(c.branchId, { server: ctx.instanceId, gen: c.gen, at: c.connectedAt.getTime() });
    return {
      where,
      complete: false,
      note: `the location registry is unreachable (${(err as Error).message}): online is known only for branches connected to instance ${ctx.instanceId}; the rest comes from the database`,
    };
  }
}
