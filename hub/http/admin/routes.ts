/** Every admin route, in one table (the list docs/api.md documents). */
import type { HubContext } from '../../context.js';
import type { HubStore } from '../../store/index.js';
import { auditRoutes } from './audit.js';
import { branchRoutes } from './branches.js';
import { connectionRoutes } from './connections.js';
import type { AdminCall, Reply } from './request.js';
import type { Route } from './router.js';
import { tenantRouteRoutes } from './tenant-routes.js';
import { tenantRoutes } from './tenants.js';
import { schemaRoutes } from './schema.js';
import { triageRoutes } from './triage.js';

export interface AdminDeps {
  readonly ctx: HubContext;
  /** The hub's store, recording `admin` as the source of what it changes in the audit log. */
  readonly store: HubStore;
}

export type AdminHandler = (call: AdminCall) => Promise<Reply>;
export type AdminRoute = Route<AdminHandler>;

export function adminRoutes(deps: AdminDeps): AdminRoute[] {
  return [...tenantRoutes(deps), ...tenantRouteRoutes(deps), ...branchRoutes(deps), ...connectionRoutes(deps), ...auditRoutes(deps), ...triageRoutes(deps), ...schemaRoutes(deps)];
}
