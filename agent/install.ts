/**
 * `hub-broker agent install` / `uninstall`: schema `hubsync` and the capture triggers, in one
 * transaction each, so a refusal (missing table, no primary key, a type the agent cannot carry)
 * leaves the database exactly as it was. Both are idempotent; re-running install with another
 * table list adds and removes triggers to match.
 */
import type pg from 'pg';
import { introspectTable, type TableInfo } from './catalog.js';
import type { TableConfig } from './config.js';
import { withTransaction } from './db.js';
import { AgentError } from './errors.js';
import { captureSql, dropCaptureSql } from './sql/capture.js';
import { quoteTable } from './sql/ident.js';
import { HUBSYNC_SCHEMA_VERSION, SCHEMA_DDL } from './sql/schema.js';

export interface InstallOptions {
  readonly tenantId: string;
  readonly branchId: string;
  readonly tables: readonly TableConfig[];
  /** The tables here are at this schema version already (docs/sync-semantics.md "Schema changes"). */
  readonly schemaVersion?: number;
}

export interface InstallReport {
  readonly tables: readonly TableInfo[];
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly updated: readonly string[];
}

// Two installs at once would race on CREATE OR REPLACE; the second waits for the first.
export const INSTALL_LOCK = `SELECT pg_advisory_xact_lock(hashtextextended('hubsync.install', 0))`;

async function schemaExists(c: pg.PoolClient): Promise<boolean> {
  const { rows } = await c.query<{ ok: boolean }>(`SELECT to_regclass('hubsync.meta') IS NOT NULL AS ok`);
  return rows[0]?.ok === true;
}

async function tableExists(c: pg.PoolClient, table: string): Promise<boolean> {
  const { rows } = await c.query<{ ok: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS ok`, [quoteTable(table)]);
  return rows[0]?.ok === true;
}

export async function install(pool: pg.Pool, options: InstallOptions): Promise<InstallReport> {
  return withTransaction(pool, async (c) => {
    await c.query(INSTALL_LOCK);
    if (await schemaExists(c)) {
      const { rows } = await c.query<{ tenant_id: string; branch_id: string }>(`SELECT tenant_id, branch_id FROM hubsync.meta`);
      const m = rows[0];
      if (m && (m.tenant_id !== options.tenantId || m.branch_id !== options.branchId)) {
        throw new AgentError(
          'other_installation',
          `this database is installed for tenant ${m.tenant_id} branch ${m.branch_id}, not ${options.tenantId}/${options.branchId}; uninstall first`,
        );
      }
    }
    // Introspect everything before changing anything: a refusal names the first culprit.
    const infos: TableInfo[] = [];
    for (const t of options.tables) infos.push(await introspectTable(c, t));

    await c.query(SCHEMA_DDL);
    await c.query(
      `INSERT INTO hubsync.meta (tenant_id, branch_id, version) VALUES ($1, $2, $3)
       ON CONFLICT (singleton) DO UPDATE SET version = excluded.version`,
      [options.tenantId, options.branchId, HUBSYNC_SCHEMA_VERSION],
    );
    const before = await c.query<{ tbl: string; capture_function: string; added_by_schema: number | null }>(
      `SELECT tbl, capture_function, added_by_schema FROM hubsync.tables`,
    );
    // Tables a schema change added stay: the configuration need not list them.
    const wanted = new Set([...infos.map((t) => t.name), ...before.rows.filter((r) => r.added_by_schema !== null).map((r) => r.tbl)]);
    const removed: string[] = [];
    for (const old of before.rows) {
      if (wanted.has(old.tbl)) continue;
      await c.query(dropCaptureSql(old.tbl, old.capture_function, await tableExists(c, old.tbl)));
      await c.query(`DELETE FROM hubsync.tables WHERE tbl = $1`, [old.tbl]);
      removed.push(old.tbl);
    }
    if (options.schemaVersion !== undefined) {
      await c.query(`UPDATE hubsync.apply_state SET schema_version = greatest(schema_version, $1)`, [options.schemaVersion]);
    }
    const had = new Set(before.rows.map((r) => r.tbl));
    for (const [position, t] of infos.entries()) await installTable(c, t, position, options.branchId);
    return {
      tables: infos,
      added: infos.filter((t) => !had.has(t.name)).map((t) => t.name),
      updated: infos.filter((t) => had.has(t.name)).map((t) => t.name),
      removed,
    };
  });
}

/**
 * Installs (again) the capture of one table and records it in `hubsync.tables`. Columns retired
 * by schema changes and the version that added the table are kept unless given.
 */
export async function installTable(
  c: pg.PoolClient,
  t: TableInfo,
  position: number,
  branchId: string,
  schema: { readonly retired?: Readonly<Record<string, string | null>>; readonly addedBy?: number } = {},
): Promise<void> {
  const sql = captureSql(t, branchId);
  await c.query(sql.install);
  await c.query(
    `INSERT INTO hubsync.tables (tbl, columns, pk_columns, pins, strategy, relkind, capture_function, position, merge, additive, retired, added_by_schema)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, coalesce($11::jsonb, '{}'), $12)
     ON CONFLICT (tbl) DO UPDATE SET columns = excluded.columns, pk_columns = excluded.pk_columns,
       pins = excluded.pins, strategy = excluded.strategy, relkind = excluded.relkind,
       capture_function = excluded.capture_function, position = excluded.position,
       merge = excluded.merge, additive = excluded.additive, installed_at = now(),
       retired = coalesce($11::jsonb, hubsync.tables.retired),
       added_by_schema = coalesce($12, hubsync.tables.added_by_schema)`,
    [
      t.name,
      JSON.stringify(t.columns),
      t.pk,
      t.pins,
      t.strategy ?? null,
      t.relkind,
      sql.functionName,
      position,
      t.merge,
      t.additive,
      schema.retired === undefined ? null : JSON.stringify(schema.retired),
      schema.addedBy ?? null,
    ],
  );
}

export interface UninstallOptions {
  /** Drop even when changes the hub has not acknowledged are still in the outbox. */
  readonly force?: boolean;
}

export interface UninstallReport {
  readonly installed: boolean;
  readonly droppedChanges: number;
}

/** Removes the triggers and schema `hubsync` (outbox, versions, conflicts) in one transaction. */
export async function uninstall(pool: pg.Pool, options: UninstallOptions = {}): Promise<UninstallReport> {
  return withTransaction(pool, async (c) => {
    await c.query(INSTALL_LOCK);
    if (!(await schemaExists(c))) return { installed: false, droppedChanges: 0 };
    const pending = await c.query<{ n: string }>(`SELECT count(*) AS n FROM hubsync.change_log`);
    const n = Number(pending.rows[0]?.n ?? 0);
    if (n > 0 && options.force !== true) {
      throw new AgentError(
        'pending_changes',
        `${n} captured changes have not been acknowledged by the hub; run the agent until they are sent, or uninstall --force`,
      );
    }
    const tables = await c.query<{ tbl: string; capture_function: string }>(`SELECT tbl, capture_function FROM hubsync.tables`);
    for (const t of tables.rows) {
      await c.query(dropCaptureSql(t.tbl, t.capture_function, await tableExists(c, t.tbl)));
    }
    await c.query(`DROP SCHEMA hubsync CASCADE`);
    return { installed: true, droppedChanges: n };
  });
}
