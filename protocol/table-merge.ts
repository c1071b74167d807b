/**
 * Tenant-wide declarations of how tables merge (`Tenant.spec.tables`, the admin API), and the
 * check that a branch's own configuration agrees: two branches merging one table differently
 * would not converge (a counter sent as a difference and applied as a value). Pure.
 */
import type { TableMerge } from './messages.js';

const TABLE = /^[^.\s]+\.[^.\s]+$/;

export class TableMergeError extends Error {
  override readonly name = 'TableMergeError';
}

/** Checks and normalises declarations (counter columns sorted, no duplicates); throws naming the entry at fault. */
export function validateTableMerges(raw: unknown): TableMerge[] {
  if (!Array.isArray(raw)) throw new TableMergeError('tables must be a list of {name, merge, additive}');
  const seen = new Set<string>();
  return raw.map((item: unknown, i) => {
    const at = `tables[${i}]`;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new TableMergeError(`${at} must be {name, merge, additive}`);
    const o = item as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!['name', 'merge', 'additive'].includes(k)) throw new TableMergeError(`${at}: unknown key "${k.slice(0, 40)}"`);
    if (typeof o.name !== 'string' || !TABLE.test(o.name) || o.name.length > 130) throw new TableMergeError(`${at}.name must be schema.table`);
    if (seen.has(o.name)) throw new TableMergeError(`${at}: ${o.name} is declared twice`);
    seen.add(o.name);
    const additive = o.additive ?? [];
    if (!Array.isArray(additive) || additive.some((c) => typeof c !== 'string' || c === '' || c.length > 63)) {
      throw new TableMergeError(`${at}.additive must be a list of column names`);
    }
    const merge = o.merge ?? (additive.length > 0 ? 'column' : 'row');
    if (merge !== 'row' && merge !== 'column') throw new TableMergeError(`${at}.merge must be row or column`);
    if (merge === 'row' && additive.length > 0) throw new TableMergeError(`${at}: additive columns need merge: column`);
    return { name: o.name, merge, additive: [...new Set(additive as string[])].sort() };
  });
}

/**
 * Where a branch's tables merge otherwise than the tenant declares; a table the tenant does not
 * declare merges by row. Empty when they agree.
 */
export function mergeDisagreements(branch: readonly TableMerge[], tenant: readonly TableMerge[]): string[] {
  const declared = new Map(tenant.map((t) => [t.name, t]));
  const show = (t: TableMerge | undefined): string =>
    t === undefined || (t.merge === 'row' && t.additive.length === 0) ? 'by row' : `by ${t.merge}${t.additive.length > 0 ? ` with counters ${[...t.additive].sort().join(', ')}` : ''}`;
  const out: string[] = [];
  for (const mine of branch) {
    const theirs = declared.get(mine.name);
    const a = show(mine);
    const b = show(theirs);
    if (a !== b) out.push(`${mine.name} merges ${a} here, ${b} for the tenant`);
  }
  return out;
}
