/**
 * The `catalog.report` frame: the synced tables as installed here, so that the hub can check
 * route filters against real columns and types (docs/sync-semantics.md "Routing").
 */
import type { CatalogReport } from '../protocol/messages.js';
import type { TableInfo } from './catalog.js';

/** At most what the frame carries; a branch syncing more tables reports the first ones. */
const MAX_TABLES = 1000;

export function catalogReport(id: string, tables: ReadonlyMap<string, TableInfo>): CatalogReport {
  return {
    type: 'catalog.report',
    id,
    tables: [...tables.values()].slice(0, MAX_TABLES).map((t) => ({
      name: t.name,
      columns: t.columns.map((c) => ({ name: c.name, type: c.type })),
      pk: [...t.pk],
      ...(t.strategy === undefined ? {} : { strategy: t.strategy }),
    })),
  };
}
