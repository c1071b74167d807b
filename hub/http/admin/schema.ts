/**
 * `/admin/tenants/:tenant/schema`: publish a schema change (POST) and list them with each branch's
 * version (GET); docs/api.md "Schema changes". The hub checks and numbers the change
 * (hub/schema/publish.ts); branches apply it when they reach it in the log.
 */
import { z } from 'zod';
import { branchSchemaVersions, listSchemaChanges, publishSchemaChange } from '../../schema/publish.js';
import type { AdminDeps, AdminRoute } from './routes.js';
import { param, readBody, readQuery, type AdminCall, type Reply } from './request.js';
import { NoQuery, requireTenant } from './tenants.js';

export const PostSchemaBody = z.strictObject({
  sql: z.string().min(1),
  /** As a Tenant resource's spec.schemaChanges[].name: publishing the same name and SQL again is a no-op. */
  name: z
    .string()
    .max(100)
    .regex(/^[a-z0-9]([-a-z0-9._]*[a-z0-9])?$/, 'lowercase letters, digits, -, . and _, starting and ending with a letter or digit')
    .optional(),
  description: z.string().max(1024).optional(),
  allow_unknown_tables: z.boolean().optional(),
});

export function schemaRoutes({ ctx, store }: AdminDeps): AdminRoute[] {
  const list = async (call: AdminCall): Promise<Reply> => {
    readQuery(call.url, NoQuery);
    const t = await requireTenant(store, param(call, 'tenant'));
    const [changes, versions] = await Promise.all([listSchemaChanges(ctx.pool, t), branchSchemaVersions(ctx.pool, t)]);
    const latest = changes.at(-1)?.version ?? 0;
    return {
      status: 200,
      body: {
        version: latest,
        changes: changes.map((c) => ({ version: c.version, name: c.name, offset: c.offset, description: c.description, statements: c.statements, published_by: c.publishedBy, published_at: c.publishedAt })),
        branches: [...versions].sort(([a], [b]) => a.localeCompare(b)).map(([id, version]) => ({ id, schema_version: version, pending: latest - version })),
      },
    };
  };

  const publish = async (call: AdminCall): Promise<Reply> => {
    readQuery(call.url, NoQuery);
    const body = await readBody(call.req, PostSchemaBody);
    const t = await requireTenant(store, param(call, 'tenant'));
    const p = await publishSchemaChange(ctx.pool, ctx.fanout, t, {
      sql: body.sql,
      name: body.name ?? null,
      description: body.description ?? null,
      allowUnknownTables: body.allow_unknown_tables ?? false,
      by: `admin@${call.source}`,
    });
    const reply = { version: p.version, offset: p.offset, statements: p.statements, created: p.created };
    if (!p.created) return { status: 200, body: reply };
    await store.audit({ tenantId: t.id, event: 'schema.publish', source: 'admin', detail: { version: p.version, offset: p.offset, name: body.name ?? null, statements: p.statements.map((s) => s.kind) } });
    ctx.logger.info({ tenant: t.id, version: p.version, offset: p.offset }, 'schema change published');
    return { status: 201, body: reply };
  };

  return [{ path: '/admin/tenants/:tenant/schema', methods: { GET: list, POST: publish } }];
}
