/**
 * `/admin/tenants/:tenant/branches…`: list, create (with the API key, once), show, change the
 * routing fields (groups, attributes), delete, suspend, resume, rotate the key, and a branch's
 * sync status.
 */
import { currentRouting, sameRouting } from '../../routes/resync.js';
import { z } from 'zod';
import * as log from '../../log.js';
import type { AdminDeps, AdminRoute } from './routes.js';
import { notFound, param, readBody, readQuery, type AdminCall, type Reply } from './request.js';
import { EmptyBody, NoQuery, requireTenant, tenantPath } from './tenants.js';
import { locateTenant } from './locations.js';
import { branchJson, connectionDetails, presence } from './views.js';

/** Shapes only: the store checks the names (hub/routes/route.ts) and says which one is wrong. */
const RoutingFields = {
  groups: z.array(z.string()).optional(),
  attributes: z.record(z.string(), z.string()).optional(),
};

export const CreateBranchBody = z.strictObject({ id: z.string(), suspended: z.boolean().optional(), ...RoutingFields });
/** Each field given replaces the branch's current one whole; omitted fields stay. */
export const UpdateBranchBody = z.strictObject(RoutingFields);
/** At most 30 days: a longer overlap of two valid keys defeats the point of rotating. */
export const RotateKeyBody = z.strictObject({ graceSeconds: z.int().min(0).max(30 * 86_400).optional() });

/** A response carrying an API key must not be stored by any cache on the way. */
const NO_STORE = { 'cache-control': 'no-store' };

export function branchRoutes({ ctx, store }: AdminDeps): AdminRoute[] {
  const ids = (call: AdminCall) => ({ tenant: param(call, 'tenant'), branch: param(call, 'branch') });

  const requireBranch = async (tenant: string, branch: string) => {
    await requireTenant(store, tenant);
    const b = await store.getBranch(tenant, branch);
    if (!b) throw notFound(`branch ${tenant}/${branch.slice(0, 70)} does not exist`);
    return b;
  };

  const list = async (call: AdminCall): Promise<Reply> => {
    readQuery(call.url, NoQuery);
    const t = await requireTenant(store, param(call, 'tenant'));
    const [branches, loc, cursors] = await Promise.all([store.listBranches(t.id), locateTenant(ctx, t.id), log.cursors(ctx.pool, t.schemaName)]);
    const byBranch = new Map(cursors.branches.map((c) => [c.branchId, c]));
    return {
      status: 200,
      body: {
        tenantId: t.id,
        logHead: cursors.head,
        ...(loc.note ? { note: loc.note } : {}),
        branches: branches.map((b) => {
          const c = byBranch.get(b.id);
          const cursor = c?.cursor ?? 0;
          return { ...branchJson(b), ...presence(loc.where.get(b.id), loc.complete), cursor, lag: Math.max(0, cursors.head - cursor) };
        }),
      },
    };
  };

  const create = async (call: AdminCall): Promise<Reply> => {
    readQuery(call.url, NoQuery);
    const tenant = param(call, 'tenant');
    const body = await readBody(call.req, CreateBranchBody);
    const { branch, apiKey } = await store.createBranch(tenant, body.id, {
      status: body.suspended ? 'suspended' : 'active',
      ...(body.groups !== undefined ? { groups: body.groups } : {}),
      ...(body.attributes !== undefined ? { attributes: body.attributes } : {}),
    });
    return {
      status: 201,
      body: { ...branchJson(branch), apiKey },
      headers: { ...NO_STORE, location: `${tenantPath(tenant)}/branches/${encodeURIComponent(branch.id)}` },
    };
  };

  const show = async (call: AdminCall): Promise<Reply> => {
    readQuery(call.url, NoQuery);
    const { tenant, branch } = ids(call);
    const b = await requireBranch(tenant, branch);
    const loc = await locateTenant(ctx, tenant);
    return { status: 200, body: { ...branchJson(b), ...presence(loc.where.get(branch), loc.complete), ...(loc.note ? { note: loc.note } : {}) } };
  };

  const update = async (call: AdminCall): Promise<Reply> => {
    readQuery(call.url, NoQuery);
    const body = await readBody(call.req, UpdateBranchBody);
    const { tenant, branch } = ids(call);
    await requireTenant(store, tenant);
    const r = await store.setBranchRouting(tenant, branch, {
      ...(body.groups !== undefined ? { groups: body.groups } : {}),
      ...(body.attributes !== undefined ? { attributes: body.attributes } : {}),
    });
    return { status: 200, body: branchJson(r.branch) };
  };

  const remove = async (call: AdminCall): Promise<Reply> => {
    readQuery(call.url, NoQuery);
    const { tenant, branch } = ids(call);
    await requireTenant(store, tenant);
    if (!(await store.deleteBranch(tenant, branch))) throw notFound(`branch ${tenant}/${branch.slice(0, 70)} does not exist`);
    return { status: 200, body: { tenantId: tenant, id: branch, deleted: true } };
  };

  const setStatus = (suspend: boolean) => async (call: AdminCall): Promise<Reply> => {
    readQuery(call.url, NoQuery);
    await readBody(call.req, EmptyBody);
    const { tenant, branch } = ids(call);
    await requireTenant(store, tenant);
    const b = suspend ? await store.suspendBranch(tenant, branch) : await store.resumeBranch(tenant, branch);
    return { status: 200, body: branchJson(b) };
  };

  const rotateKey = async (call: AdminCall): Promise<Reply> => {
    readQuery(call.url, NoQuery);
    const body = await readBody(call.req, RotateKeyBody);
    const { tenant, branch } = ids(call);
    await requireTenant(store, tenant);
    const graceSeconds = body.graceSeconds ?? ctx.config.keyGraceSeconds;
    const r = await store.rotateKey(tenant, branch, graceSeconds);
    return { status: 200, body: { ...branchJson(r.branch), graceSeconds, apiKey: r.apiKey }, headers: NO_STORE };
  };

  const status = async (call: AdminCall): Promise<Reply> => {
    readQuery(call.url, NoQuery);
    const { tenant, branch } = ids(call);
    const t = await requireTenant(store, tenant);
    const b = await requireBranch(tenant, branch);
    const [loc, pos] = await Promise.all([locateTenant(ctx, tenant), log.branchPosition(ctx.pool, t.schemaName, branch)]);
    const p = presence(loc.where.get(branch), loc.complete);
    const local = p.instance === ctx.instanceId ? ctx.registry.get(tenant, branch) : undefined;
    return {
      status: 200,
      body: {
        tenantId: tenant,
        branchId: branch,
        status: b.status,
        tenantStatus: t.status,
        ...p,
        // An online branch is being seen now; the stored time is its last connect or disconnect.
        lastSeenAt: p.online ? new Date().toISOString() : (b.lastSeenAt?.toISOString() ?? null),
        cursor: pos.cursor,
        logHead: pos.head,
        lag: Math.max(0, pos.head - pos.cursor),
        log: { head: pos.head, prunedUpto: pos.prunedUpto, compactedUpto: pos.compactedUpto },
        // The rule the hub applies on connect (hello.bootstrap): behind retention, or new to a log with history.
        needsSnapshot: pos.cursor < pos.prunedUpto || (pos.cursor === 0 && pos.head > 0),
        // Whether its rows follow its routing as it is now; false: it is resynced (in the
        // background) at its next connection, `connection.snapshot` shows how far it got.
        routingFollowed: sameRouting(b.routingSynced, currentRouting(t.routes, b)),
        connection: local ? connectionDetails(local.info()) : null,
        answeredBy: ctx.instanceId,
        ...(loc.note ? { note: loc.note } : {}),
      },
    };
  };

  const B = '/admin/tenants/:tenant/branches';
  return [
    { path: B, methods: { GET: list, POST: create } },
    { path: `${B}/:branch`, methods: { GET: show, PATCH: update, DELETE: remove } },
    { path: `${B}/:branch/suspend`, methods: { POST: setStatus(true) } },
    { path: `${B}/:branch/resume`, methods: { POST: setStatus(false) } },
    { path: `${B}/:branch/rotate-key`, methods: { POST: rotateKey } },
    { path: `${B}/:branch/status`, methods: { GET: status } },
  ];
}
