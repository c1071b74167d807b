/**
 * `schema apply` at the hub (docs/sync-semantics.md "Schema changes"): a migration is parsed and
 * checked (protocol/schema-change.ts), numbered, and appended to the tenant's log as one entry of
 * `hubsync.schema` (protocol/schema-entry.ts), ordered with the rows; then announced like any
 * append, so every branch reaches it live, on catch-up or in its snapshot. Nothing is executed here.
 */
import type pg from 'pg';
import { planSchemaChange, type SchemaStep } from '../../protocol/schema-change.js';
import { MAX_SCHEMA_SQL, SCHEMA_ORIGIN, SCHEMA_TABLE, schemaChange } from '../../protocol/schema-entry.js';
import { compact } from '../compactor.js';
import type { Fanout } from '../fanout.js';
import { appendLockKey, appendMany } from '../log.js';
import { ADVISORY_KEY_SQL } from '../store/db.js';
import { quoteIdent, StoreError, withTransaction, type Tenant } from '../store/index.js';
import type { Route } from '../routes/route.js';
import { filterColumns, parseFilter } from '../routes/filter.js';
import { anyTableMatcher } from '../../protocol/table-pattern.js';

export interface PublishInput {
  readonly sql: string;
  /** Makes publishing idempotent: the same name and SQL again is the change already published. */
  readonly name: string | null;
  readonly description: string | null;
  /** Also tables no change of which reached the hub yet (synced, but never written). */
  readonly allowUnknownTables: boolean;
  /** Who asked, for the record. */
  readonly by: string;
}

export interface Statement {
  readonly kind: SchemaStep['kind'];
  readonly table: string | null;
  readonly sql: string;
}

export interface Published {
  readonly version: number;
  readonly offset: number;
  readonly statements: readonly Statement[];
  /** False when a change of this name and SQL had been published before (nothing appended). */
  readonly created: boolean;
}

export interface SchemaChangeView {
  readonly version: number;
  readonly name: string | null;
  readonly offset: number;
  readonly description: string | null;
  readonly statements: readonly Statement[];
  readonly sql: string;
  readonly publishedBy: string;
  readonly publishedAt: string;
}

const statementOf = (s: SchemaStep): Statement => ({ kind: s.kind, table: 'table' in s ? s.table : null, sql: s.sql });

/** Tables the hub has seen changes of, and those earlier schema changes created. */
async function knownTables(q: pg.Pool, schema: string): Promise<Set<string>> {
  const s = quoteIdent(schema);
  const { rows } = await q.query<{ tbl: string }>(
    `SELECT DISTINCT tbl FROM ${s}.state WHERE tbl <> $1
     UNION SELECT st->>'table' FROM ${s}.schema_changes c, jsonb_array_elements(c.statements) st WHERE st->>'kind' = 'create_table'`,
    [SCHEMA_TABLE],
  );
  return new Set(rows.map((r) => r.tbl));
}

/** Names of the routes whose filter reads `column` of `table`. */
function routesReading(routes: readonly Route[], table: string, column: string): string[] {
  return routes.filter((r) => r.filter !== undefined && anyTableMatcher(r.tables)(table) && filterColumns(parseFilter(r.filter)).has(column)).map((r) => r.name);
}

/** What the hub can tell up front that every branch would refuse (agent/schema/plan.ts says the same). */
async function refusals(q: pg.Pool, tenant: Tenant, steps: readonly SchemaStep[]): Promise<string[]> {
  const columnLevel = new Set((tenant.tables ?? []).filter((t) => t.merge === 'column').map((t) => t.name));
  const problems: string[] = [];
  for (const step of steps) {
    if (step.kind !== 'drop_column' && step.kind !== 'rename_column') continue;
    for (const route of routesReading(tenant.routes, step.table, step.column)) {
      problems.push(`route "${route}" filters ${step.table} on column ${step.column}; change the route before dropping or renaming the column`);
    }
    if (columnLevel.has(step.table)) {
      problems.push(`${step.table} merges by column: dropping or renaming its columns is not supported while syncing (${step.sql.slice(0, 60)})`);
      continue;
    }
    const key = await q.query(`SELECT 1 FROM ${quoteIdent(tenant.schemaName)}.state WHERE tbl = $1 AND pk ? $2 LIMIT 1`, [step.table, step.column]);
    if ((key.rowCount ?? 0) > 0) problems.push(`${step.table}.${step.column} is part of the primary key; key columns cannot be dropped or renamed while syncing`);
  }
  return problems;
}

/** The change published under `name`, if any; a different SQL under the same name is a conflict. */
async function samePublished(q: pg.Pool | pg.PoolClient, schema: string, input: PublishInput): Promise<Published | null> {
  if (input.name === null) return null;
  const { rows } = await q.query<{ version: number; pos: string; sql: string; statements: Statement[] }>(
    `SELECT version, pos::text AS pos, sql, statements FROM ${quoteIdent(schema)}.schema_changes WHERE name = $1`,
    [input.name],
  );
  const row = rows[0];
  if (!row) return null;
  if (row.sql !== input.sql) {
    throw new StoreError('conflict', `schema change "${input.name}" was published as version ${row.version} with other SQL; a published change cannot change: publish a new one`);
  }
  return { version: row.version, offset: Number(row.pos), statements: row.statements, created: false };
}

/**
 * Parses, checks, numbers and appends a schema change; throws `StoreError('invalid')` naming every
 * problem. `announce` tells the hub instances at once (without it, their log-head poll finds it).
 */
export async function publishSchemaChange(pool: pg.Pool, announce: Pick<Fanout, 'publish'> | null, tenant: Tenant, input: PublishInput): Promise<Published> {
  if (Buffer.byteLength(input.sql, 'utf8') > MAX_SCHEMA_SQL) throw new StoreError('invalid', `a schema change holds at most ${MAX_SCHEMA_SQL} bytes of SQL`);
  // Before the checks: a change published already may be refused now (its table is known since).
  const before = await samePublished(pool, tenant.schemaName, input);
  if (before) return before;
  // The checks below read the compacted state: fold in what the log holds now.
  await compact(pool, tenant.id, tenant.schemaName);
  const known = input.allowUnknownTables ? null : await knownTables(pool, tenant.schemaName);
  const plan = await planSchemaChange(input.sql, known === null || known.size === 0 ? null : known);
  if (!plan.ok) throw new StoreError('invalid', plan.problems.join('; ').slice(0, 4000));
  const problems = await refusals(pool, tenant, plan.steps);
  if (problems.length > 0) throw new StoreError('invalid', problems.join('; ').slice(0, 4000));
  const statements = plan.steps.map(statementOf);
  const s = quoteIdent(tenant.schemaName);
  const published = await withTransaction(pool, async (c) => {
    // The append lock: versions are numbered in log order.
    await c.query(`SELECT pg_advisory_xact_lock(${ADVISORY_KEY_SQL})`, [appendLockKey(tenant.id)]);
    const raced = await samePublished(c, tenant.schemaName, input);
    if (raced) return { ...raced, change: null };
    const { rows } = await c.query<{ next: number }>(`SELECT coalesce(max(version), 0) + 1 AS next FROM ${s}.schema_changes`);
    const v = rows[0]?.next ?? 1;
    const ch = schemaChange({ version: v, sql: input.sql, description: input.description }, Date.now());
    const [appended] = await appendMany(c, tenant.id, tenant.schemaName, SCHEMA_ORIGIN, [{ changes: [ch], target: null }]);
    const off = appended?.offsets[0] as number;
    await c.query(`INSERT INTO ${s}.schema_changes (version, pos, sql, description, statements, published_by, name) VALUES ($1, $2, $3, $4, $5, $6, $7)`, [
      v,
      off,
      input.sql,
      input.description,
      JSON.stringify(statements),
      input.by,
      input.name,
    ]);
    return { version: v, offset: off, statements, created: true, change: ch };
  });
  const { change, ...result } = published;
  if (change && announce) {
    const at = Date.now();
    await announce.publish({ kind: 'entries', tenant: tenant.id, first: result.offset, last: result.offset, origin: SCHEMA_ORIGIN, target: null, at, entries: [[result.offset, change]] });
  }
  return result;
}

export async function listSchemaChanges(pool: pg.Pool, tenant: Tenant): Promise<SchemaChangeView[]> {
  const { rows } = await pool.query<{
    version: number;
    name: string | null;
    pos: string;
    description: string | null;
    statements: Statement[];
    sql: string;
    published_by: string;
    published_at: Date;
  }>(
    `SELECT version, name, pos::text AS pos, description, statements, sql, published_by, published_at FROM ${quoteIdent(tenant.schemaName)}.schema_changes ORDER BY version`,
  );
  return rows.map((r) => ({
    version: r.version,
    name: r.name,
    offset: Number(r.pos),
    description: r.description,
    statements: r.statements,
    sql: r.sql,
    publishedBy: r.published_by,
    publishedAt: r.published_at.toISOString(),
  }));
}

/** The latest schema version published to the tenant (0: none). */
export async function latestSchemaVersion(pool: pg.Pool, tenant: Tenant): Promise<number> {
  const { rows } = await pool.query<{ v: number }>(`SELECT coalesce(max(version), 0) AS v FROM ${quoteIdent(tenant.schemaName)}.schema_changes`);
  return rows[0]?.v ?? 0;
}

/**
 * Each branch's schema version, as far as the hub knows: the changes at or below its cursor
 * (`only`: that branch's alone).
 */
export async function branchSchemaVersions(pool: pg.Pool, tenant: Tenant, only?: string): Promise<Map<string, number>> {
  const s = quoteIdent(tenant.schemaName);
  const { rows } = await pool.query<{ branch_id: string; version: number }>(
    `SELECT c.branch_id, (SELECT coalesce(max(version), 0) FROM ${s}.schema_changes x WHERE x.pos <= c.pos) AS version
       FROM ${s}.cursors c WHERE $1::text IS NULL OR c.branch_id = $1`,
    [only ?? null],
  );
  return new Map(rows.map((r) => [r.branch_id, r.version]));
}
