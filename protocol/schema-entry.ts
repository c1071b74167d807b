/**
 * A schema change as it travels in the tenant log (docs/sync-semantics.md "Schema changes"): an
 * entry like any change, so live delivery, catch-up and snapshots carry it in order with the
 * rows, of the reserved table `hubsync.schema`, written only by the hub (origin `hub-broker`,
 * its `seq` the schema version). The row carries the migration's text; a branch parses it again
 * (schema-change.ts) and runs only the statements that pass, whatever the hub said. Pure.
 */
import { z } from 'zod';
import { encodeHlc } from './hlc.js';
import type { Change } from './messages.js';

/** The reserved table of schema-change entries; tables of schema `hubsync` are never synced. */
export const SCHEMA_TABLE = 'hubsync.schema';
/** The origin of schema-change entries: no branch may have this id. */
export const SCHEMA_ORIGIN = 'hub-broker';

/** Whether `table` belongs to Hub-Broker itself, so no branch may send changes of it. */
export const isReservedTable = (table: string): boolean => table.startsWith('hubsync.');

/** Longest migration text one schema change may hold. */
export const MAX_SCHEMA_SQL = 60 * 1024;

export const SchemaRowSchema = z.strictObject({
  version: z.number().int().positive().max(2 ** 31 - 1),
  sql: z.string().min(1).max(MAX_SCHEMA_SQL),
  description: z.string().max(1024).nullable(),
});
export type SchemaRow = z.infer<typeof SchemaRowSchema>;

/** The log entry's change for schema version `row.version`, stamped `now` (ms). */
export function schemaChange(row: SchemaRow, now: number): Change {
  return {
    table: SCHEMA_TABLE,
    op: 'insert',
    pk: { version: row.version },
    row: { version: row.version, sql: row.sql, description: row.description },
    hlc: encodeHlc({ wall: now, logical: 0 }),
    vv: { [SCHEMA_ORIGIN]: row.version },
    origin: SCHEMA_ORIGIN,
    seq: row.version,
    tx: `schema-${row.version}`,
    tx_end: true,
  };
}

/** Whether `c` is a schema-change entry (of the reserved table, from the hub). */
export const isSchemaChange = (c: Change): boolean => c.table === SCHEMA_TABLE;

/**
 * The schema change `c` carries, or why it is not a well-formed one. Only the hub's own entries
 * count: one from anywhere else is refused, never run.
 */
export function schemaRowOf(c: Change): { ok: true; row: SchemaRow } | { ok: false; reason: string } {
  if (c.origin !== SCHEMA_ORIGIN) return { ok: false, reason: `a change of ${SCHEMA_TABLE} from ${c.origin}: only the hub publishes schema changes` };
  const r = SchemaRowSchema.safeParse(c.row);
  if (!r.success) return { ok: false, reason: `malformed schema change: ${r.error.issues[0]?.message ?? 'invalid'}` };
  if (r.data.version !== c.seq) return { ok: false, reason: `schema change ${r.data.version} carried as seq ${c.seq}` };
  return { ok: true, row: r.data };
}
