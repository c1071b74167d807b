/** `/admin/tenants…`: list, create, show, update, delete, suspend and resume tenants. */
import { z } from 'zod';
import { StrategyNameSchema } from '../../../protocol/index.js';
import * as log from '../../log.js';
import type { HubStore, Tenant, TenantSpec } from '../../store/index.js';
import type { AdminDeps, AdminRoute } from './routes.js';
import { notFound, param, readBody, readQuery, type AdminCall, type Reply } from './request.js';
import { tenantJson } from './views.js';

const RateLimitSchema = z.strictObject({
  messagesPerSecond: z.number().positive().max(1e9),
  burst: z.int().positive().max(1e9),
});

/** Settable fields; `null` clears `maxBranches` (no limit) and `rateLimit` (the hub's default). */
const TenantFields = {
  maxBranches: z.int().min(0).max(1e9).nullable().optional(),
  rateLimit: RateLimitSchema.nullable().optional(),
  conflictStrategy: StrategyNameSchema.optional(),
  branchPriority: z.array(z.string()).max(10_000).optional(),
  deletionPolicy: z.enum(['retain', 'delete']).optional(),
  suspended: z.boolean().optional(),
  /** Tables merged by column, with counters; the store checks them (protocol/table-merge.ts). */
  tables: z.array(z.unknown()).max(10_000).optional(),
};

export const CreateTenantBody = z.strictObject({ id: z.string(), ...TenantFields });
export const UpdateTenantBody = z.strictObject(TenantFields);
export const EmptyBody = z.strictObject({});
export const NoQuery = z.strictObject({});
const DeleteQuery = z.strictObject({ policy: z.enum(['retain', 'delete']).optional() });

type Fields = z.infer<typeof UpdateTenantBody>;

function toSpec(f: Fields): TenantSpec {
  return {
    ...(f.maxBranches !== undefined ? { maxBranches: f.maxBranches } : {}),
    ...(f.rateLimit !== undefined ? { rateLimit: f.rateLimit } : {}),
    ...(f.conflictStrategy !== undefined ? { conflictStrategy: f.conflictStrategy } : {}),
    ...(f.branchPriority !== undefined ? { branchPriority: f.branchPriority } : {}),
    ...(f.deletionPolicy !== undefined ? { deletionPolicy: f.deletionPolicy } : {}),
    ...(f.suspended !== undefined ? { status: f.suspended ? 'suspended' : 'active' } : {}),
    ...(f.tables !== undefined ? { tables: f.tables } : {}),
  };
}

export async function requireTenant(store: HubStore, id: string): Promise<Tenant> {
  const t = await store.getTenant(id);
  if (!t) throw notFound(`tenant ${id.slice(0, 70)} does not exist`);
  return t;
}

export function tenantPath(id: string): string {
  return `/admin/tenants/${encodeURIComponent(id)}`;
}

export function tenantRoutes({ ctx, store }: AdminDeps): AdminRoute[] {
  const list = async (call: AdminCall): Promise<Reply> => {
    readQuery(call.url, NoQuery);
    return { status: 200, body: { tenants: (await store.listTenants()).map(tenantJson) } };
  };

  const create = async (call: AdminCall): Promise<Reply> => {
    readQuery(call.url, NoQuery);
    const { id, ...fields } = await readBody(call.req, CreateTenantBody);
    const t = await store.createTenant(id, toSpec(fields));
    return { status: 201, body: tenantJson(t), headers: { location: tenantPath(t.id) } };
  };

  const show = async (call: AdminCall): Promise<Reply> => {
    readQuery(call.url, NoQuery);
    const t = await requireTenant(store, param(call, 'tenant'));
    const [branchCount, cursors] = await Promise.all([store.countBranches(t.id), log.cursors(ctx.pool, t.schemaName)]);
    return {
      status: 200,
      body: {
        ...tenantJson(t),
        branchCount,
        log: { head: cursors.head, prunedUpto: cursors.prunedUpto, compactedUpto: cursors.compactedUpto },
      },
    };
  };

  const update = async (call: AdminCall): Promise<Reply> => {
    readQuery(call.url, NoQuery);
    const fields = await readBody(call.req, UpdateTenantBody);
    return { status: 200, body: tenantJson(await store.updateTenant(param(call, 'tenant'), toSpec(fields))) };
  };

  const remove = async (call: AdminCall): Promise<Reply> => {
    const { policy } = readQuery(call.url, DeleteQuery);
    const id = param(call, 'tenant');
    const r = await store.deleteTenant(id, policy);
    if (!r.deleted) throw notFound(`tenant ${id.slice(0, 70)} does not exist`);
    return { status: 200, body: { id, deleted: true, policy: r.schemaDropped ? 'delete' : 'retain', schemaDropped: r.schemaDropped } };
  };

  const setStatus = (suspend: boolean) => async (call: AdminCall): Promise<Reply> => {
    readQuery(call.url, NoQuery);
    await readBody(call.req, EmptyBody);
    const id = param(call, 'tenant');
    const t = suspend ? await store.suspendTenant(id) : await store.resumeTenant(id);
    return { status: 200, body: tenantJson(t) };
  };

  return [
    { path: '/admin/tenants', methods: { GET: list, POST: create } },
    { path: '/admin/tenants/:tenant', methods: { GET: show, PATCH: update, DELETE: remove } },
    { path: '/admin/tenants/:tenant/suspend', methods: { POST: setStatus(true) } },
    { path: '/admin/tenants/:tenant/resume', methods: { POST: setStatus(false) } },
  ];
}
