/**
 * `/admin/tenants/:tenant/routes`: show, replace and clear a tenant's routes (who receives which
 * tables and rows; docs/api.md "Routes"). The list is replaced whole, so what is saved is exactly
 * what was sent; the store checks it (hub/routes/route.ts) and names the route at fault.
 */
import { z } from 'zod';
import type { AdminDeps, AdminRoute } from './routes.js';
import { param, readBody, readQuery, type AdminCall, type Reply } from './request.js';
import { EmptyBody, NoQuery, requireTenant } from './tenants.js';

/** Each route is checked by the store, whose messages name the route and the problem. */
export const PutRoutesBody = z.strictObject({ routes: z.array(z.unknown()) });

export function tenantRouteRoutes({ store }: AdminDeps): AdminRoute[] {
  const list = async (call: AdminCall): Promise<Reply> => {
    readQuery(call.url, NoQuery);
    const t = await requireTenant(store, param(call, 'tenant'));
    return { status: 200, body: { routes: t.routes } };
  };

  const replace = async (call: AdminCall): Promise<Reply> => {
    readQuery(call.url, NoQuery);
    const { routes } = await readBody(call.req, PutRoutesBody);
    const t = await store.updateTenant(param(call, 'tenant'), { routes });
    return { status: 200, body: { routes: t.routes } };
  };

  const clear = async (call: AdminCall): Promise<Reply> => {
    readQuery(call.url, NoQuery);
    await readBody(call.req, EmptyBody);
    const t = await store.updateTenant(param(call, 'tenant'), { routes: [] });
    return { status: 200, body: { routes: t.routes } };
  };

  return [{ path: '/admin/tenants/:tenant/routes', methods: { GET: list, PUT: replace, DELETE: clear } }];
}
