/** `GET /admin/audit`: the audit log, newest first, filtered by tenant and event. */
import { z } from 'zod';
import type { AdminDeps, AdminRoute } from './routes.js';
import { readQuery, type AdminCall, type Reply } from './request.js';

const Query = z.strictObject({
  tenant: z.string().min(1).optional(),
  event: z.string().min(1).max(100).optional(),
  limit: z
    .string()
    .regex(/^\d+$/, 'must be an integer from 1 to 1000')
    .transform(Number)
    .pipe(z.int().min(1, 'must be an integer from 1 to 1000').max(1000, 'must be an integer from 1 to 1000'))
    .optional(),
});

export function auditRoutes({ store }: AdminDeps): AdminRoute[] {
  const list = async (call: AdminCall): Promise<Reply> => {
    const q = readQuery(call.url, Query);
    const entries = await store.listAudit({
      ...(q.tenant !== undefined ? { tenantId: q.tenant } : {}),
      ...(q.event !== undefined ? { event: q.event } : {}),
      limit: q.limit ?? 100,
    });
    return {
      status: 200,
      body: {
        entries: entries.map((e) => ({
          id: e.id,
          at: e.at.toISOString(),
          tenantId: e.tenantId ?? null,
          branchId: e.branchId ?? null,
          event: e.event,
          source: e.source ?? null,
          detail: e.detail ?? {},
        })),
      },
    };
  };

  return [{ path: '/admin/audit', methods: { GET: list } }];
}
