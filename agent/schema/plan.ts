/**
 * What a branch does with a schema change it reached in the log (docs/sync-semantics.md "Schema
 * changes"), decided before anything runs: skip it (the branch is at that version already), run
 * its statements, or stop the stream there with a reason a person can act on. The statements are
 * the branch's own parse of the text (protocol/schema-change.ts), never the hub's word. Pure.
 */
import type { SchemaStep } from '../../protocol/schema-change.js';
import type { TableInfo } from '../catalog.js';

/** Old column names of a table → the name they have now, or null once dropped. */
export type Retired = Readonly<Record<string, string | null>>;

export interface TableUpdate {
  /** The table as it is, or null when the change creates it. */
  readonly before: TableInfo | null;
  /** Columns retired by the change, merged with those retired before. */
  readonly retired: Retired;
}

export type SchemaDecision =
  | { readonly action: 'skip'; readonly why: string }
  | { readonly action: 'refuse'; readonly reason: string }
  | {
      readonly action: 'apply';
      readonly steps: readonly SchemaStep[];
      /** Synced tables whose capture is installed again after the statements, by name, in step order. */
      readonly tables: ReadonlyMap<string, TableUpdate>;
    };

/**
 * `version` against the branch's `at`: versions arrive in order, one after the other; an older
 * one was applied already (a redelivery, or a snapshot after an `install --schema-version`).
 */
export function decideSchemaChange(version: number, at: number, steps: readonly SchemaStep[], installed: ReadonlyMap<string, TableInfo>): SchemaDecision {
  if (version <= at) return { action: 'skip', why: `this branch is at schema version ${at} already` };
  if (version !== at + 1) {
    return { action: 'refuse', reason: `schema change ${version} arrived while this branch is at version ${at}: versions ${at + 1}–${version - 1} are missing here` };
  }
  const tables = new Map<string, { before: TableInfo | null; retired: Record<string, string | null> }>();
  const touch = (name: string): { before: TableInfo | null; retired: Record<string, string | null> } | undefined => {
    let t = tables.get(name);
    if (!t) {
      const before = installed.get(name);
      if (!before) return undefined;
      t = { before, retired: { ...(before.retired ?? {}) } };
      tables.set(name, t);
    }
    return t;
  };
  for (const step of steps) {
    if (step.kind === 'drop_index') continue;
    if (step.kind === 'create_table') {
      if (installed.has(step.table)) return { action: 'refuse', reason: `${step.table} is synced here already` };
      tables.set(step.table, { before: null, retired: {} });
      continue;
    }
    const t = touch(step.table);
    if (!t) return { action: 'refuse', reason: `${step.table} is not a synced table at this branch` };
    if (step.kind === 'create_index') continue;
    const info = t.before;
    if (info && info.pk.includes(step.column)) {
      return { action: 'refuse', reason: `${step.table}.${step.column} is part of the primary key; key columns cannot be dropped or renamed while syncing` };
    }
    if (info && info.merge === 'column') {
      return { action: 'refuse', reason: `${step.table} merges by column: dropping or renaming its columns is not supported while syncing` };
    }
    if (step.kind === 'drop_column') {
      for (const [old, now] of Object.entries(t.retired)) if (now === step.column) t.retired[old] = null;
      t.retired[step.column] = null;
    } else if (step.kind === 'rename_column') {
      for (const [old, now] of Object.entries(t.retired)) if (now === step.column) t.retired[old] = step.to;
      t.retired[step.column] = step.to;
      // A name used again is no longer retired.
      delete t.retired[step.to];
    } else if (step.kind === 'add_column') {
      delete t.retired[step.column];
    }
  }
  return { action: 'apply', steps, tables };
}

/** How long a branch waits before trying again a schema change that failed here `blocks` times in a row: 2 s, doubling to 30 s. */
export function schemaRetryDelay(blocks: number): number {
  return Math.min(30_000, 2000 * 2 ** Math.min(10, blocks));
}
