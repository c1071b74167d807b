/**
 * `GET /admin/connections`: every online branch on every instance. Where a branch is connected
 * comes from the engine's location registry (shared through Redis); the live details of a
 * connection (mode, offsets, buffered bytes) are known only to the instance holding it, so they
 * are filled in for that instance's own connections and null for the others.
 */
import { z } from 'zod';
import type { ConnectionInfo } from '../../registry.js';
import { locateTenant } from './locations.js';
import type { AdminDeps, AdminRoute } from './routes.js';
import { readQuery, type AdminCall, type Reply } from './request.js';
import { requireTenant } from './tenants.js';
import { connectionDetails, type ConnectionDetails } from './views.js';

const Query = z.strictObject({ tenant: z.string().min(1).optional() });

export interface ConnectionJson {
  readonly tenantId: string;
  readonly branchId: string;
  readonly instance: string;
  readonly connectedAt: string;
  /** Whether the answering instance holds this connection (and so knows its details). */
  readonly local: boolean;
  readonly details: ConnectionDetails | null;
}

/** Location lookups per tenant run this many at a time. */
const LOCATE_CONCURRENCY = 16;

export function connectionRoutes({ ctx, store }: AdminDeps): AdminRoute[] {
  const list = async (call: AdminCall): Promise<Reply> => {
    const { tenant } = readQuery(call.url, Query);
    const tenants = tenant !== undefined ? [(await requireTenant(store, tenant)).id] : (await store.listTenants()).map((t) => t.id);
    const local = new Map<string, ConnectionInfo>(ctx.registry.list(tenant).map((c) => [`${c.tenantId}/${c.branchId}`, c]));
    const out: ConnectionJson[] = [];
    let note: string | undefined;
    for (let i = 0; i < tenants.length; i += LOCATE_CONCURRENCY) {
      const slice = tenants.slice(i, i + LOCATE_CONCURRENCY);
      const located = await Promise.all(slice.map((t) => locateTenant(ctx, t)));
      slice.forEach((t, j) => {
        const l = located[j];
        if (l?.note) note = l.note;
        for (const [branchId, loc] of l?.where ?? []) {
          const key = `${t}/${branchId}`;
          const mine = loc.server === ctx.instanceId ? local.get(key) : undefined;
          if (mine) local.delete(key);
          out.push({
            tenantId: t,
            branchId,
            instance: loc.server,
            connectedAt: mine?.connectedAt ?? new Date(loc.at).toISOString(),
            local: mine !== undefined,
            details: mine ? connectionDetails(mine) : null,
          });
        }
      });
    }
    // A socket of this instance whose location is not (or no longer) in the registry, e.g. while Redis is away.
    for (const c of local.values()) {
      out.push({ tenantId: c.tenantId, branchId: c.branchId, instance: c.instanceId, connectedAt: c.connectedAt, local: true, details: connectionDetails(c) });
    }
    out.sort((a, b) => (a.tenantId === b.tenantId ? (a.branchId < b.branchId ? -1 : 1) : a.tenantId < b.tenantId ? -1 : 1));
    return { status: 200, body: { answeredBy: ctx.instanceId, ...(note ? { note } : {}), connections: out } };
  };

  return [{ path: '/admin/connections', methods: { GET: list } }];
}
