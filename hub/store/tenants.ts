import type pg from 'pg';
import type { StrategyName } from '../../protocol/index.js';
import { appendAudit } from './audit.js';
import { readCatalog } from './catalog.js';
import { notifyControl } from './control.js';
import { ADVISORY_KEY_SQL, quoteIdent, withTransaction, type Queryable } from './db.js';
import { StoreError } from './errors.js';
import { tenantSchemaName, upgradeTenantSchema } from './migrations.js';
import { RouteError, validateRoutes, type Route } from '../routes/route.js';
import { TableMergeError, validateTableMerges } from '../../protocol/table-merge.js';
import type { TableMerge } from '../../protocol/messages.js';

export type TenantStatus = 'active' | 'suspended';
export type DeletionPolicy = 'retain' | 'delete';

export interface RateLimit {
  readonly messagesPerSecond: number;
  readonly burst: number;
}

export interface Tenant {
  readonly id: string;
  readonly status: TenantStatus;
  /** null: no limit. */
  readonly maxBranches: number | null;
  /** null: the hub's default limit. */
  readonly rateLimit: RateLimit | null;
  readonly conflictStrategy: StrategyName;
  readonly branchPriority: readonly string[];
  readonly deletionPolicy: DeletionPolicy;
  /** Routing (docs/sync-semantics.md "Routing"); empty: every change to every other branch. */
  readonly routes: readonly Route[];
  /** Tables merged by column, with their counters (docs/sync-semantics.md); every branch must agree. */
  readonly tables: readonly TableMerge[];
  readonly schemaName: string;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

/** The settable part of a tenant; omitted fields keep their value (or default on create). */
export interface TenantSpec {
  readonly status?: TenantStatus;
  readonly maxBranches?: number | null;
  readonly rateLimit?: RateLimit | null;
  readonly conflictStrategy?: StrategyName;
  readonly branchPriority?: readonly string[];
  readonly deletionPolicy?: DeletionPolicy;
  /** Replaces the tenant's routes (validated against its branches' attributes). */
  readonly routes?: readonly unknown[];
  /** Replaces the tenant's table merge declarations (protocol/table-merge.ts). */
  readonly tables?: readonly unknown[];
}

const ID = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Tenant ids stop at 56 so that `tenant_<id>` fits PostgreSQL's 63-byte identifiers (longer ones are silently cut). */
export const MAX_TENANT_ID = 56;

export function assertResourceId(kind: string, id: string, max = 63): void {
  if (id.length > max || !ID.test(id)) {
    throw new StoreError('invalid', `${kind} id "${id.slice(0, 70)}" must be a DNS-1123 label (lowercase letters, digits, "-", at most ${max})`);
  }
}

interface TenantRow {
  id: string;
  status: TenantStatus;
  max_branches: number | null;
  rate_messages_per_second: number | null;
  rate_burst: number | null;
  conflict_strategy: StrategyName;
  branch_priority: string[];
  deletion_policy: DeletionPolicy;
  routes: Route[];
  tables: TableMerge[];
  schema_name: string;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = `id, status, max_branches, rate_messages_per_second, rate_burst, conflict_strategy,
  branch_priority, deletion_policy, routes, tables, schema_name, created_at, updated_at`;

function toTenant(r: TenantRow): Tenant {
  return {
    id: r.id,
    status: r.status,
    maxBranches: r.max_branches,
    rateLimit:
      r.rate_messages_per_second === null
        ? null
        : { messagesPerSecond: r.rate_messages_per_second, burst: r.rate_burst ?? Math.ceil(r.rate_messages_per_second) },
    conflictStrategy: r.conflict_strategy,
    branchPriority: r.branch_priority,
    deletionPolicy: r.deletion_policy,
    routes: r.routes,
    tables: r.tables,
    schemaName: r.schema_name,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** `spec` with its table merge declarations checked and normalised. */
function withTables(spec: TenantSpec): TenantSpec {
  if (spec.tables === undefined) return spec;
  try {
    return { ...spec, tables: validateTableMerges(spec.tables) };
  } catch (err) {
    if (err instanceof TableMergeError) throw new StoreError('invalid', err.message);
    throw err;
  }
}

function validateSpec(spec: TenantSpec): void {
  if (spec.maxBranches != null && (!Number.isInteger(spec.maxBranches) || spec.maxBranches < 0)) {
    throw new StoreError('invalid', 'maxBranches must be a non-negative integer');
  }
  if (spec.rateLimit != null) {
    const { messagesPerSecond, burst } = spec.rateLimit;
    if (!(messagesPerSecond > 0) || !Number.isInteger(burst) || burst <= 0) {
      throw new StoreError('invalid', 'rateLimit needs messagesPerSecond > 0 and an integer burst > 0');
    }
  }
  for (const b of spec.branchPriority ?? []) assertResourceId('branchPriority entry', b);
}

/** Whether applying `spec` to `t` would change anything. */
function differs(t: Tenant, spec: TenantSpec): boolean {
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  return (
    (spec.status !== undefined && spec.status !== t.status) ||
    (spec.maxBranches !== undefined && spec.maxBranches !== t.maxBranches) ||
    (spec.rateLimit !== undefined && !same(spec.rateLimit, t.rateLimit)) ||
    (spec.conflictStrategy !== undefined && spec.conflictStrategy !== t.conflictStrategy) ||
    (spec.branchPriority !== undefined && !same(spec.branchPriority, t.branchPriority)) ||
    (spec.deletionPolicy !== undefined && spec.deletionPolicy !== t.deletionPolicy) ||
    (spec.routes !== undefined && !same(spec.routes, t.routes)) ||
    (spec.tables !== undefined && !same(spec.tables, t.tables))
  );
}

export async function getTenant(q: Queryable, id: string): Promise<Tenant | null> {
  const { rows } = await q.query<TenantRow>(`SELECT ${COLUMNS} FROM hub.tenants WHERE id = $1`, [id]);
  return rows[0] ? toTenant(rows[0]) : null;
}

export async function listTenants(q: Queryable): Promise<Tenant[]> {
  const { rows } = await q.query<TenantRow>(`SELECT ${COLUMNS} FROM hub.tenants ORDER BY id`);
  return rows.map(toTenant);
}

async function insertTenant(c: pg.PoolClient, id: string, spec: TenantSpec): Promise<Tenant> {
  const schema = tenantSchemaName(id);
  const version = await upgradeTenantSchema(c, schema, 0);
  const { rows } = await c.query<TenantRow>(
    `INSERT INTO hub.tenants (id, status, max_branches, rate_messages_per_second, rate_burst, conflict_strategy,
       branch_priority, deletion_policy, schema_name, schema_version, routes, tables)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING ${COLUMNS}`,
    [
      id,
      spec.status ?? 'active',
      spec.maxBranches ?? null,
      spec.rateLimit?.messagesPerSecond ?? null,
      spec.rateLimit?.burst ?? null,
      spec.conflictStrategy ?? 'last-write-wins',
      spec.branchPriority ?? [],
      spec.deletionPolicy ?? 'retain',
      schema,
      version,
      JSON.stringify(spec.routes ?? []),
      JSON.stringify(spec.tables ?? []),
    ],
  );
  await notifyControl(c, { kind: 'tenant', tenant: id, op: 'updated' });
  return toTenant(rows[0] as TenantRow);
}

async function schemaExists(q: Queryable, schema: string): Promise<boolean> {
  const { rowCount } = await q.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
  return rowCount === 1;
}

/** Creates a tenant and its schema. A schema retained from a deleted tenant of the same id is reused. */
export async function createTenant(pool: pg.Pool, id: string, spec: TenantSpec = {}, source = 'admin'): Promise<Tenant> {
  assertResourceId('tenant', id, MAX_TENANT_ID);
  validateSpec(spec);
  spec = withTables(spec);
  return withTransaction(pool, async (c) => {
    await c.query(`SELECT pg_advisory_xact_lock(${ADVISORY_KEY_SQL})`, [`hub-broker:tenant:${id}`]);
    if (await getTenant(c, id)) throw new StoreError('conflict', `tenant ${id} already exists`);
    if (spec.routes !== undefined) spec = { ...spec, routes: await checkRoutes(c, id, spec.routes) };
    const retained = await schemaExists(c, tenantSchemaName(id));
    const t = retained ? await adoptRetainedSchema(c, id, spec) : await insertTenant(c, id, spec);
    await appendAudit(c, { tenantId: id, event: 'tenant.created', source, detail: { retainedSchema: retained } });
    return t;
  });
}

/** A schema kept by a `retain` deletion: record the tenant again on top of it. */
async function adoptRetainedSchema(c: pg.PoolClient, id: string, spec: TenantSpec): Promise<Tenant> {
  const schema = tenantSchemaName(id);
  const hasMeta = await c.query(
    `SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'meta'`,
    [schema],
  );
  if (hasMeta.rowCount === 0) {
    throw new StoreError('conflict', `schema ${schema} exists but is not a hub-broker tenant schema`);
  }
  // A retained schema is at version 1 or later; let migrate() bring it up to date.
  const { rows } = await c.query<TenantRow>(
    `INSERT INTO hub.tenants (id, status, max_branches, rate_messages_per_second, rate_burst, conflict_strategy,
       branch_priority, deletion_policy, schema_name, schema_version, routes, tables)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $11) RETURNING ${COLUMNS}`,
    [
      id,
      spec.status ?? 'active',
      spec.maxBranches ?? null,
      spec.rateLimit?.messagesPerSecond ?? null,
      spec.rateLimit?.burst ?? null,
      spec.conflictStrategy ?? 'last-write-wins',
      spec.branchPriority ?? [],
      spec.deletionPolicy ?? 'retain',
      schema,
      JSON.stringify(spec.routes ?? []),
      JSON.stringify(spec.tables ?? []),
    ],
  );
  const version = await upgradeTenantSchema(c, schema, 1);
  await c.query('UPDATE hub.tenants SET schema_version = $2 WHERE id = $1', [id, version]);
  await notifyControl(c, { kind: 'tenant', tenant: id, op: 'updated' });
  return toTenant(rows[0] as TenantRow);
}

/** Routes as saved, checked against the attribute names of the tenant's branches and the tables they reported. */
async function checkRoutes(q: Queryable, tenantId: string, routes: readonly unknown[]): Promise<Route[]> {
  const { rows } = await q.query<{ names: string[] | null; branches: number }>(
    `SELECT (SELECT array_agg(DISTINCT k) FROM hub.branches b, jsonb_object_keys(b.attributes) k WHERE b.tenant_id = $1) AS names,
            (SELECT count(*)::int FROM hub.branches WHERE tenant_id = $1) AS branches`,
    [tenantId],
  );
  const r = rows[0];
  try {
    return validateRoutes(routes, { attributes: r && r.branches > 0 ? new Set(r.names ?? []) : null, tables: await readCatalog(q, tenantSchemaName(tenantId)) });
  } catch (err) {
    if (err instanceof RouteError) throw new StoreError('invalid', err.message);
    throw err;
  }
}

/** Changes the given fields. */
export async function updateTenant(pool: pg.Pool, id: string, spec: TenantSpec, source = 'admin'): Promise<Tenant> {
  validateSpec(spec);
  spec = withTables(spec);
  return withTransaction(pool, async (c) => {
    const { rows } = await c.query<TenantRow>(`SELECT ${COLUMNS} FROM hub.tenants WHERE id = $1 FOR UPDATE`, [id]);
    const before = rows[0];
    if (!before) throw new StoreError('not_found', `tenant ${id} does not exist`);
    const current = toTenant(before);
    if (spec.routes !== undefined) spec = { ...spec, routes: await checkRoutes(c, id, spec.routes) };
    if (!differs(current, spec)) return current;
    const after = await c.query<TenantRow>(
      `UPDATE hub.tenants SET
         status = $2, max_branches = $3, rate_messages_per_second = $4, rate_burst = $5,
         conflict_strategy = $6, branch_priority = $7, deletion_policy = $8, routes = $9, tables = $10, updated_at = now()
       WHERE id = $1 RETURNING ${COLUMNS}`,
      [
        id,
        spec.status ?? current.status,
        spec.maxBranches !== undefined ? spec.maxBranches : current.maxBranches,
        spec.rateLimit !== undefined ? (spec.rateLimit?.messagesPerSecond ?? null) : before.rate_messages_per_second,
        spec.rateLimit !== undefined ? (spec.rateLimit?.burst ?? null) : before.rate_burst,
        spec.conflictStrategy ?? current.conflictStrategy,
        spec.branchPriority ?? current.branchPriority,
        spec.deletionPolicy ?? current.deletionPolicy,
        JSON.stringify(spec.routes ?? current.routes),
        JSON.stringify(spec.tables ?? current.tables),
      ],
    );
    await notifyControl(c, { kind: 'tenant', tenant: id, op: 'updated' });
    const event = spec.status && spec.status !== current.status ? `tenant.${spec.status === 'suspended' ? 'suspended' : 'resumed'}` : 'tenant.updated';
    const routesChanged = spec.routes !== undefined && JSON.stringify(spec.routes) !== JSON.stringify(current.routes);
    await appendAudit(c, { tenantId: id, event, source, ...(routesChanged ? { detail: { routes: spec.routes } } : {}) });
    return toTenant(after.rows[0] as TenantRow);
  });
}

/**
 * Creates the tenant or brings it to `spec`; a no-op (and no notification) when nothing differs.
 * This is what a level-triggered reconciler calls.
 */
export async function ensureTenant(
  pool: pg.Pool,
  id: string,
  spec: TenantSpec,
  source = 'operator',
): Promise<{ tenant: Tenant; created: boolean; changed: boolean }> {
  spec = withTables(spec);
  const existing = await getTenant(pool, id);
  if (!existing) {
    try {
      return { tenant: await createTenant(pool, id, spec, source), created: true, changed: true };
    } catch (err) {
      // Another writer created it first: fall through to an update.
      if (!(err instanceof StoreError && err.code === 'conflict' && (await getTenant(pool, id)))) throw err;
    }
  }
  const current = existing ?? (await getTenant(pool, id));
  if (current && !differs(current, spec)) return { tenant: current, created: false, changed: false };
  return { tenant: await updateTenant(pool, id, spec, source), created: false, changed: true };
}

export interface DeleteTenantResult {
  readonly deleted: boolean;
  readonly schemaDropped: boolean;
}

/**
 * Deletes the tenant, its branches and their keys. With policy `delete` its schema (log,
 * cursors, state) is dropped; with `retain` it stays for a later tenant of the same id.
 */
export async function deleteTenant(
  pool: pg.Pool,
  id: string,
  policy?: DeletionPolicy,
  source = 'admin',
): Promise<DeleteTenantResult> {
  return withTransaction(pool, async (c) => {
    const { rows } = await c.query<TenantRow>(`SELECT ${COLUMNS} FROM hub.tenants WHERE id = $1 FOR UPDATE`, [id]);
    const row = rows[0];
    if (!row) return { deleted: false, schemaDropped: false };
    const effective = policy ?? row.deletion_policy;
    await c.query('DELETE FROM hub.tenants WHERE id = $1', [id]);
    if (effective === 'delete') await c.query(`DROP SCHEMA IF EXISTS ${quoteIdent(row.schema_name)} CASCADE`);
    await notifyControl(c, { kind: 'tenant', tenant: id, op: 'deleted' });
    await appendAudit(c, { tenantId: id, event: 'tenant.deleted', source, detail: { policy: effective } });
    return { deleted: true, schemaDropped: effective === 'delete' };
  });
}
