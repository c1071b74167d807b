/**
 * `/admin/tenants/:tenant/branches/:branch/dead-letters…` and `…/conflicts…`: a branch's dead
 * letters (list, show, retry, discard) and conflicts (list, show, override), asked of its agent
 * while it is connected (hub/triage.ts). They live in the branch's database; the hub relays.
 */
import type { TriageRequest, TriageResult } from '../../../protocol/index.js';
import { TriageError } from '../../triage.js';
import type { AdminDeps, AdminRoute } from './routes.js';
import { AdminError, notFound, param, readBody, readQuery, type AdminCall, type Reply } from './request.js';
import { EmptyBody, NoQuery } from './tenants.js';

const STATUS: Record<TriageResult['status'], { status: number; code?: 'not_found' | 'conflict' | 'invalid_request' }> = {
  ok: { status: 200 },
  not_found: { status: 404, code: 'not_found' },
  // A retry that failed again, or an agent that takes no such requests: valid, but not now.
  failed: { status: 409, code: 'conflict' },
  refused: { status: 409, code: 'conflict' },
  invalid: { status: 400, code: 'invalid_request' },
};

export function triageRoutes({ ctx, store }: AdminDeps): AdminRoute[] {
  const ask = async (call: AdminCall, kind: TriageRequest['kind'], action: TriageRequest['action'], withBody: boolean): Promise<Reply> => {
    readQuery(call.url, NoQuery);
    if (withBody) await readBody(call.req, EmptyBody);
    const tenant = param(call, 'tenant');
    const branch = param(call, 'branch');
    if (!(await store.getBranch(tenant, branch))) throw notFound(`branch ${tenant.slice(0, 70)}/${branch.slice(0, 70)} does not exist`);
    const id = action === 'list' ? undefined : param(call, 'id');
    if (id !== undefined && !/^\d{1,18}$/.test(id)) throw new AdminError(400, 'invalid_request', `id must be a number (got ${JSON.stringify(id.slice(0, 30))})`);
    let r: TriageResult;
    try {
      r = await ctx.triage.ask(tenant, branch, { kind, action, ...(id === undefined ? {} : { target: id }) });
    } catch (err) {
      if (err instanceof TriageError) throw new AdminError(err.reason === 'timeout' ? 504 : 409, err.reason === 'timeout' ? 'branch_timeout' : 'branch_not_connected', err.message);
      throw err;
    }
    if (action === 'retry' || action === 'discard' || action === 'override') {
      await store.audit({ tenantId: tenant, branchId: branch, event: `${kind === 'conflicts' ? 'conflict' : 'dead_letter'}.${action}`, source: 'admin', detail: { id, status: r.status, message: r.message } });
    }
    const m = STATUS[r.status];
    if (m.code) throw new AdminError(m.status, m.code, r.message);
    return { status: 200, body: { message: r.message, result: r.body ?? null } };
  };
  const base = '/admin/tenants/:tenant/branches/:branch';
  return [
    { path: `${base}/dead-letters`, methods: { GET: (c) => ask(c, 'dead-letters', 'list', false) } },
    { path: `${base}/dead-letters/:id`, methods: { GET: (c) => ask(c, 'dead-letters', 'show', false), DELETE: (c) => ask(c, 'dead-letters', 'discard', true) } },
    { path: `${base}/dead-letters/:id/retry`, methods: { POST: (c) => ask(c, 'dead-letters', 'retry', true) } },
    { path: `${base}/conflicts`, methods: { GET: (c) => ask(c, 'conflicts', 'list', false) } },
    { path: `${base}/conflicts/:id`, methods: { GET: (c) => ask(c, 'conflicts', 'show', false) } },
    { path: `${base}/conflicts/:id/override`, methods: { POST: (c) => ask(c, 'conflicts', 'override', true) } },
  ];
}
