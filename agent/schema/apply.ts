/**
 * Runs a schema change that reached this branch through the log (docs/sync-semantics.md "Schema
 * changes"): in one transaction the migration's statements, the capture of every table it touched
 * installed again, the version recorded and the cursor moved past it, so a crash at any point
 * leaves the branch at the old version or the new one. The text is parsed here again and only the
 * supported statement kinds run (protocol/schema-change.ts). When it cannot be applied (a local
 * difference), the branch stops its stream at that point (`SchemaBlocked`, recorded in
 * `apply_state.schema_blocked`) and tries again later; nothing after it is applied meanwhile.
 */
import type pg from 'pg';
import { planSchemaChange } from '../../protocol/schema-change.js';
import { schemaRowOf, type SchemaRow } from '../../protocol/schema-entry.js';
import type { Change } from '../../protocol/messages.js';
import { introspectTable, loadInstalledTables, type TableInfo } from '../catalog.js';
import { sqlState, withTransaction } from '../db.js';
import { INSTALL_LOCK, installTable } from '../install.js';
import { decideSchemaChange } from './plan.js';

/** A local writer holding a table the change alters: give way, and try again a few times. */
const LOCK_TIMEOUT = '2s';
const LOCK_ATTEMPTS = 3;

/** The stream stops at schema change `version` until it can be applied. */
export class SchemaBlocked extends Error {
  override readonly name = 'SchemaBlocked';
  constructor(
    readonly version: number,
    readonly offset: number | null,
    readonly reason: string,
  ) {
    super(`schema change ${version} cannot be applied at this branch: ${reason}`);
  }
}

export interface SchemaOutcome {
  readonly version: number;
  readonly outcome: 'applied' | 'skipped';
  /** The synced tables afterwards. */
  readonly tables: Map<string, TableInfo>;
  /** The branch's cursor afterwards. */
  readonly cursor: number;
}

/**
 * Applies the schema change `change` found at log `offset` (null: in a snapshot, where the cursor
 * does not move). Throws `SchemaBlocked` when this branch cannot apply it.
 */
export async function applySchemaChange(pool: pg.Pool, branchId: string, offset: number | null, change: Change): Promise<SchemaOutcome> {
  const parsed = schemaRowOf(change);
  if (!parsed.ok) return block(pool, change.seq, offset, parsed.reason);
  const row = parsed.row;
  for (let attempt = 1; ; attempt++) {
    try {
      return await attemptOnce(pool, branchId, offset, row);
    } catch (err) {
      if (err instanceof Refused) return block(pool, row.version, offset, err.message);
      const state = sqlState(err);
      if (state === '55P03' && attempt < LOCK_ATTEMPTS) continue;
      // Anything the database refused is a local difference a person must look at.
      if (state !== undefined) return block(pool, row.version, offset, `${state}: ${(err as Error).message}`);
      throw err;
    }
  }
}

class Refused extends Error {}

async function attemptOnce(pool: pg.Pool, branchId: string, offset: number | null, row: SchemaRow): Promise<SchemaOutcome> {
  return withTransaction(pool, async (client) => {
    // One schema change at a time, and none while `agent install` runs.
    await client.query(INSTALL_LOCK);
    const state = await client.query<{ schema_version: number }>(`SELECT schema_version FROM hubsync.apply_state FOR UPDATE`);
    const at = state.rows[0]?.schema_version ?? 0;
    const installed = await loadInstalledTables(client);
    const plan = await planSchemaChange(row.sql, new Set(installed.keys()));
    const decision = plan.ok ? decideSchemaChange(row.version, at, plan.steps, installed) : { action: 'refuse' as const, reason: plan.problems.join('; ') };
    if (decision.action === 'refuse') throw new Refused(decision.reason);
    const outcome = decision.action === 'skip' ? 'skipped' : 'applied';
    if (decision.action === 'apply') {
      await client.query(`SET LOCAL lock_timeout = '${LOCK_TIMEOUT}'`);
      for (const step of decision.steps) await client.query(step.sql);
      const last = await client.query<{ next: number }>(`SELECT coalesce(max(position), -1) + 1 AS next FROM hubsync.tables`);
      let position = last.rows[0]?.next ?? 0;
      for (const [name, update] of decision.tables) {
        const before = update.before;
        const info = await introspectTable(client, {
          name,
          ...(before?.strategy ? { conflictStrategy: before.strategy } : {}),
          merge: before?.merge ?? 'row',
          ...(before && before.additive.length > 0 ? { additive: before.additive } : {}),
        });
        const { rows } = await client.query<{ position: number }>(`SELECT position FROM hubsync.tables WHERE tbl = $1`, [name]);
        await installTable(client, info, rows[0]?.position ?? position++, branchId, { retired: update.retired, ...(before === null ? { addedBy: row.version } : {}) });
      }
    }
    await client.query(
      `INSERT INTO hubsync.schema_changes (version, log_offset, sql, description, outcome) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (version) DO NOTHING`,
      [row.version, offset, row.sql, row.description, outcome],
    );
    const moved = await client.query<{ cursor: string }>(
      `UPDATE hubsync.apply_state SET schema_version = greatest(schema_version, $1), schema_blocked = NULL,
         "cursor" = CASE WHEN $2::bigint IS NULL THEN "cursor" ELSE greatest("cursor", $2::bigint) END, last_apply_at = now()
       RETURNING "cursor"::text AS cursor`,
      [row.version, offset],
    );
    const tables = await loadInstalledTables(client);
    return { version: row.version, outcome, tables, cursor: Number(moved.rows[0]?.cursor ?? 0) };
  });
}

/** Records where and why the stream stopped (`agent status`, metrics), and throws `SchemaBlocked`. */
async function block(pool: pg.Pool, version: number, offset: number | null, reason: string): Promise<never> {
  await pool
    .query(
      `UPDATE hubsync.apply_state SET schema_blocked = jsonb_build_object(
         'version', $1::int, 'error', $2::text,
         'since', coalesce(CASE WHEN (schema_blocked->>'version')::int = $1 THEN schema_blocked->>'since' END, now()::text),
         'attempts', coalesce(CASE WHEN (schema_blocked->>'version')::int = $1 THEN (schema_blocked->>'attempts')::int END, 0) + 1)`,
      [version, reason.slice(0, 2000)],
    )
    .catch(() => undefined);
  throw new SchemaBlocked(version, offset, reason);
}
