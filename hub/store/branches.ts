import { SCHEMA_ORIGIN } from '../../protocol/schema-entry.js';
import type pg from 'pg';
import { generateApiKey, hashApiKey, verifyAgainstDummy, verifyApiKey, type Argon2Params } from './api-keys.js';
import { appendAudit } from './audit.js';
import { notifyControl } from './control.js';
import { quoteIdent, withTransaction, type Queryable } from './db.js';
import { StoreError } from './errors.js';
import { queryPrepared } from './prepared.js';
import { RouteError, validateAttributes, validateGroups, type BranchRouting, type RoutingSynced } from '../routes/route.js';
import { assertResourceId, type Tenant } from './tenants.js';

export type BranchStatus = 'active' | 'suspended';

export interface Branch {
  readonly tenantId: string;
  readonly id: string;
  readonly status: BranchStatus;
  /** Whether an API key has been issued (the key itself is never stored). */
  readonly hasKey: boolean;
  readonly keyRotatedAt: Date | null;
  /** Until when the previous key still works after a rotation; null when there is none. */
  readonly previousKeyValidUntil: Date | null;
  readonly lastSeenAt: Date | null;
  /** Routing (docs/sync-semantics.md "Routing"): the groups it belongs to, sorted. */
  readonly groups: readonly string[];
  /** Routing: values row filters compare with (`branch.<name>`). */
  readonly attributes: Readonly<Record<string, string>>;
  /** The routing its rows were last brought in line with (hub/routes/resync.ts); null: none recorded (full mesh). */
  readonly routingSynced: RoutingSynced | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

interface BranchRow {
  tenant_id: string;
  id: string;
  status: BranchStatus;
  key_hash: string | null;
  prev_key_hash: string | null;
  prev_key_expires_at: Date | null;
  key_rotated_at: Date | null;
  last_seen_at: Date | null;
  groups: string[];
  attributes: Record<string, string>;
  routing_synced: RoutingSynced | null;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = `tenant_id, id, status, key_hash, prev_key_hash, prev_key_expires_at, key_rotated_at,
  last_seen_at, groups, attributes, routing_synced, created_at, updated_at`;

function toBranch(r: BranchRow, now = new Date()): Branch {
  const prevValid = r.prev_key_hash !== null && r.prev_key_expires_at !== null && r.prev_key_expires_at > now;
  return {
    tenantId: r.tenant_id,
    id: r.id,
    status: r.status,
    hasKey: r.key_hash !== null,
    keyRotatedAt: r.key_rotated_at,
    previousKeyValidUntil: prevValid ? r.prev_key_expires_at : null,
    lastSeenAt: r.last_seen_at,
    groups: r.groups,
    // jsonb keeps keys shortest first: back in name order, as they were given.
    attributes: Object.fromEntries(Object.entries(r.attributes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
    routingSynced: r.routing_synced,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export async function getBranch(q: Queryable, tenantId: string, id: string): Promise<Branch | null> {
  const { rows } = await q.query<BranchRow>(`SELECT ${COLUMNS} FROM hub.branches WHERE tenant_id = $1 AND id = $2`, [
    tenantId,
    id,
  ]);
  return rows[0] ? toBranch(rows[0]) : null;
}

export async function listBranches(q: Queryable, tenantId: string): Promise<Branch[]> {
  const { rows } = await q.query<BranchRow>(`SELECT ${COLUMNS} FROM hub.branches WHERE tenant_id = $1 ORDER BY id`, [
    tenantId,
  ]);
  const now = new Date();
  return rows.map((r) => toBranch(r, now));
}

export async function countBranches(q: Queryable, tenantId: string): Promise<number> {
  const { rows } = await q.query<{ n: number }>('SELECT count(*)::int AS n FROM hub.branches WHERE tenant_id = $1', [
    tenantId,
  ]);
  return rows[0]?.n ?? 0;
}

async function lockTenant(c: pg.PoolClient, tenantId: string): Promise<{ schema: string; maxBranches: number | null }> {
  const { rows } = await c.query<{ schema_name: string; max_branches: number | null }>(
    'SELECT schema_name, max_branches FROM hub.tenants WHERE id = $1 FOR UPDATE',
    [tenantId],
  );
  const t = rows[0];
  if (!t) throw new StoreError('not_found', `tenant ${tenantId} does not exist`);
  return { schema: t.schema_name, maxBranches: t.max_branches };
}

export interface CreateBranchOptions {
  readonly status?: BranchStatus;
  /** Issue an API key now (default true). */
  readonly issueKey?: boolean;
  readonly groups?: readonly string[];
  readonly attributes?: Readonly<Record<string, string>>;
  readonly argon2: Argon2Params;
  readonly source?: string;
}

/**
 * Creates a branch, enforcing the tenant's `maxBranches` (under a lock on the tenant row, so
 * concurrent creations cannot overshoot), with its cursor at 0. The API key, when issued, is
 * returned here and nowhere else.
 */
export async function createBranch(
  pool: pg.Pool,
  tenantId: string,
  id: string,
  options: CreateBranchOptions,
): Promise<{ branch: Branch; apiKey: string | null }> {
  assertResourceId('branch', id);
  if (id === SCHEMA_ORIGIN) throw new StoreError('invalid', `branch id ${SCHEMA_ORIGIN} is reserved: it is the origin of schema changes`);
  const routing = checkRouting({ groups: options.groups ?? [], attributes: options.attributes ?? {} });
  const apiKey = options.issueKey === false ? null : generateApiKey();
  // Hash before taking locks: argon2 is deliberately slow.
  const hash = apiKey === null ? null : await hashApiKey(apiKey, options.argon2);
  return withTransaction(pool, async (c) => {
    const tenant = await lockTenant(c, tenantId);
    if (await getBranch(c, tenantId, id)) throw new StoreError('conflict', `branch ${tenantId}/${id} already exists`);
    if (tenant.maxBranches !== null && (await countBranches(c, tenantId)) >= tenant.maxBranches) {
      throw new StoreError('limit_exceeded', `tenant ${tenantId} already has its maximum of ${tenant.maxBranches} branches`);
    }
    const { rows } = await c.query<BranchRow>(
      `INSERT INTO hub.branches (tenant_id, id, status, key_hash, key_rotated_at, groups, attributes)
       VALUES ($1, $2, $3, $4, CASE WHEN $4::text IS NULL THEN NULL ELSE now() END, $5, $6) RETURNING ${COLUMNS}`,
      [tenantId, id, options.status ?? 'active', hash, routing.groups ?? [], JSON.stringify(routing.attributes ?? {})],
    );
    await c.query(
      `INSERT INTO ${quoteIdent(tenant.schema)}.cursors (branch_id, pos) VALUES ($1, 0)
       ON CONFLICT (branch_id) DO UPDATE SET pos = 0, updated_at = now()`,
      [id],
    );
    await notifyControl(c, { kind: 'branch', tenant: tenantId, branch: id, op: 'updated' });
    await appendAudit(c, { tenantId, branchId: id, event: 'branch.created', source: options.source ?? 'admin' });
    return { branch: toBranch(rows[0] as BranchRow), apiKey };
  });
}

export async function setBranchStatus(
  pool: pg.Pool,
  tenantId: string,
  id: string,
  status: BranchStatus,
  source = 'admin',
): Promise<Branch> {
  return withTransaction(pool, async (c) => {
    const { rows } = await c.query<BranchRow>(
      `UPDATE hub.branches SET status = $3, updated_at = now()
        WHERE tenant_id = $1 AND id = $2 AND status <> $3 RETURNING ${COLUMNS}`,
      [tenantId, id, status],
    );
    if (!rows[0]) {
      const current = await getBranch(c, tenantId, id);
      if (!current) throw new StoreError('not_found', `branch ${tenantId}/${id} does not exist`);
      return current; // already in that state: nothing to announce
    }
    await notifyControl(c, { kind: 'branch', tenant: tenantId, branch: id, op: 'updated' });
    await appendAudit(c, {
      tenantId,
      branchId: id,
      event: status === 'suspended' ? 'branch.suspended' : 'branch.resumed',
      source,
    });
    return toBranch(rows[0]);
  });
}

function checkRouting(r: { groups?: unknown; attributes?: unknown }): { groups?: string[]; attributes?: Record<string, string> } {
  try {
    return {
      ...(r.groups === undefined ? {} : { groups: validateGroups(r.groups) }),
      ...(r.attributes === undefined ? {} : { attributes: validateAttributes(r.attributes) }),
    };
  } catch (err) {
    if (err instanceof RouteError) throw new StoreError('invalid', err.message);
    throw err;
  }
}

/**
 * Sets the branch's groups and/or attributes (omitted: unchanged); a no-op without notification
 * when nothing differs. Every hub instance reloads the tenant's routing on the notification.
 */
export async function setBranchRouting(
  pool: pg.Pool,
  tenantId: string,
  id: string,
  routing: Partial<BranchRouting>,
  source = 'admin',
): Promise<{ branch: Branch; changed: boolean }> {
  const next = checkRouting(routing);
  return withTransaction(pool, async (c) => {
    const { rows } = await c.query<BranchRow>(`SELECT ${COLUMNS} FROM hub.branches WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, [
      tenantId,
      id,
    ]);
    const before = rows[0];
    if (!before) throw new StoreError('not_found', `branch ${tenantId}/${id} does not exist`);
    const current = toBranch(before);
    const groups = next.groups ?? current.groups;
    const attributes = next.attributes ?? current.attributes;
    if (JSON.stringify(groups) === JSON.stringify(current.groups) && JSON.stringify(attributes) === JSON.stringify(current.attributes)) {
      return { branch: current, changed: false };
    }
    const after = await c.query<BranchRow>(
      `UPDATE hub.branches SET groups = $3, attributes = $4, updated_at = now() WHERE tenant_id = $1 AND id = $2 RETURNING ${COLUMNS}`,
      [tenantId, id, groups, JSON.stringify(attributes)],
    );
    await notifyControl(c, { kind: 'branch', tenant: tenantId, branch: id, op: 'updated' });
    await appendAudit(c, { tenantId, branchId: id, event: 'branch.routing_changed', source, detail: { groups, attributes } });
    return { branch: toBranch(after.rows[0] as BranchRow), changed: true };
  });
}

/** Records the routing a branch's rows now follow (after a resync or a bootstrap). No notification: nothing else changes. */
export async function markRoutingSynced(q: Queryable, tenantId: string, id: string, synced: RoutingSynced): Promise<void> {
  await q.query('UPDATE hub.branches SET routing_synced = $3 WHERE tenant_id = $1 AND id = $2', [tenantId, id, JSON.stringify(synced)]);
}

/** Deletes the branch, its keys, its cursor and the conflict notices held for it. */
export async function deleteBranch(pool: pg.Pool, tenantId: string, id: string, source = 'admin'): Promise<boolean> {
  return withTransaction(pool, async (c) => {
    const tenant = await c.query<{ schema_name: string }>('SELECT schema_name FROM hub.tenants WHERE id = $1', [tenantId]);
    const { rowCount } = await c.query('DELETE FROM hub.branches WHERE tenant_id = $1 AND id = $2', [tenantId, id]);
    if (!rowCount) return false;
    const schema = tenant.rows[0]?.schema_name;
    if (schema) {
      await c.query(`DELETE FROM ${quoteIdent(schema)}.cursors WHERE branch_id = $1`, [id]);
      await c.query(`DELETE FROM ${quoteIdent(schema)}.notices WHERE branch_id = $1`, [id]);
    }
    await notifyControl(c, { kind: 'branch', tenant: tenantId, branch: id, op: 'deleted' });
    await appendAudit(c, { tenantId, branchId: id, event: 'branch.deleted', source });
    return true;
  });
}

export interface RotateOptions {
  /** How long the previous key keeps working; 0 revokes it at once. */
  readonly graceSeconds: number;
  /**
   * The new key, when the caller generated it (with `generateApiKey`) and stored it first, e.g. the
   * operator writing the branch's Secret before the hub accepts the key, so a crash in between
   * loses nothing. Generated here when absent.
   */
  readonly apiKey?: string;
  readonly argon2: Argon2Params;
  readonly source?: string;
}

/** Issues a new key; the previous one stays valid for the grace period. Returns the new key once. */
export async function rotateKey(
  pool: pg.Pool,
  tenantId: string,
  id: string,
  options: RotateOptions,
): Promise<{ apiKey: string; branch: Branch }> {
  const apiKey = options.apiKey ?? generateApiKey();
  if (!/^[A-Za-z0-9_-]{43,}$/.test(apiKey)) throw new StoreError('invalid', 'an API key must be at least 32 random bytes, base64url');
  const hash = await hashApiKey(apiKey, options.argon2);
  return withTransaction(pool, async (c) => {
    const { rows } = await c.query<BranchRow>(
      `UPDATE hub.branches SET
         prev_key_hash = CASE WHEN $4 > 0 THEN key_hash ELSE NULL END,
         prev_key_expires_at = CASE WHEN $4 > 0 AND key_hash IS NOT NULL THEN now() + make_interval(secs => $4) ELSE NULL END,
         key_hash = $3, key_rotated_at = now(), updated_at = now()
       WHERE tenant_id = $1 AND id = $2 RETURNING ${COLUMNS}`,
      [tenantId, id, hash, options.graceSeconds],
    );
    if (!rows[0]) throw new StoreError('not_found', `branch ${tenantId}/${id} does not exist`);
    await notifyControl(c, { kind: 'branch', tenant: tenantId, branch: id, op: 'key' });
    await appendAudit(c, {
      tenantId,
      branchId: id,
      event: 'branch.key_rotated',
      source: options.source ?? 'admin',
      detail: { graceSeconds: options.graceSeconds },
    });
    return { apiKey, branch: toBranch(rows[0]) };
  });
}

/** Makes every key of the branch invalid (used before deleting it, or when its Secret is lost). */
export async function revokeKeys(pool: pg.Pool, tenantId: string, id: string, source = 'admin'): Promise<void> {
  await withTransaction(pool, async (c) => {
    const { rowCount } = await c.query(
      `UPDATE hub.branches SET key_hash = NULL, prev_key_hash = NULL, prev_key_expires_at = NULL, updated_at = now()
        WHERE tenant_id = $1 AND id = $2`,
      [tenantId, id],
    );
    if (!rowCount) return;
    await notifyControl(c, { kind: 'branch', tenant: tenantId, branch: id, op: 'key' });
    await appendAudit(c, { tenantId, branchId: id, event: 'branch.keys_revoked', source });
  });
}

export type KeyCheck =
  | { readonly ok: true; readonly tenant: Pick<Tenant, 'id' | 'schemaName'>; readonly branch: Branch }
  /** The reason is for metrics and the audit log only; callers answer every failure the same way. */
  | { readonly ok: false; readonly reason: 'unknown_branch' | 'suspended' | 'wrong_key' };

/**
 * Checks an API key. Unknown branches and branches without a key cost the same argon2 time as a
 * wrong key, so timing does not reveal which branches exist.
 */
export async function verifyBranchKey(
  q: Queryable,
  tenantId: string,
  id: string,
  apiKey: string,
  argon2: Argon2Params,
): Promise<KeyCheck> {
  const { rows } = await q.query<BranchRow & { tenant_status: string; schema_name: string }>(
    `SELECT b.tenant_id, b.id, b.status, b.key_hash, b.prev_key_hash, b.prev_key_expires_at, b.key_rotated_at,
            b.last_seen_at, b.groups, b.attributes, b.routing_synced, b.created_at, b.updated_at, t.status AS tenant_status, t.schema_name
       FROM hub.branches b JOIN hub.tenants t ON t.id = b.tenant_id
      WHERE b.tenant_id = $1 AND b.id = $2`,
    [tenantId, id],
  );
  const r = rows[0];
  if (!r || r.key_hash === null) {
    await verifyAgainstDummy(apiKey, argon2);
    return { ok: false, reason: 'unknown_branch' };
  }
  let match = await verifyApiKey(r.key_hash, apiKey);
  if (!match && r.prev_key_hash !== null && r.prev_key_expires_at !== null && r.prev_key_expires_at > new Date()) {
    match = await verifyApiKey(r.prev_key_hash, apiKey);
  }
  if (!match) return { ok: false, reason: 'wrong_key' };
  if (r.status !== 'active' || r.tenant_status !== 'active') return { ok: false, reason: 'suspended' };
  return { ok: true, tenant: { id: r.tenant_id, schemaName: r.schema_name }, branch: toBranch(r) };
}

export async function touchLastSeen(q: Queryable, tenantId: string, id: string): Promise<void> {
  await q.query('UPDATE hub.branches SET last_seen_at = now() WHERE tenant_id = $1 AND id = $2', [tenantId, id]);
}

/** `touchLastSeen` for many branches in one statement; `pairs` are [tenant, branch]. */
export async function touchLastSeenMany(q: Queryable, pairs: readonly (readonly [string, string])[]): Promise<void> {
  if (pairs.length === 0) return;
  await queryPrepared(
    q,
    `UPDATE hub.branches b SET last_seen_at = now()
       FROM unnest($1::text[], $2::text[]) AS u(tenant_id, id)
      WHERE b.tenant_id = u.tenant_id AND b.id = u.id`,
    [pairs.map((p) => p[0]), pairs.map((p) => p[1])],
  );
}
