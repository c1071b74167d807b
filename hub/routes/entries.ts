/**
 * Applies a routing policy to log entries: which receivers get which entries, evictions in
 * place of the changes that took a row out of a branch's subset. Pure; the fan-out, catch-up
 * reads and snapshots call it, so every path delivers alike.
 */
import type { Change, LogEntry } from '../../protocol/index.js';
import type { RoutingPolicy } from './policy.js';

/** What a branch receives when a row leaves its subset: the key, no row (nor column state), no tombstone. */
export function evictionOf(c: Change): Change {
  const { row: _row, old: _old, cols: _cols, tx_end, ...rest } = c;
  return { ...rest, op: 'delete', row: null, evict: true, ...(tx_end === undefined ? {} : { tx_end }) };
}

/**
 * Entries per receiving branch. A branch that receives every entry unchanged gets `entries`
 * itself (the same array), so its frame can share the encoding of a full-mesh delivery.
 * `target`: a targeted append goes to that branch only (still subject to the routes).
 */
export function routeEntries(policy: RoutingPolicy, entries: readonly LogEntry[], target: string | null): Map<string, readonly LogEntry[]> {
  const out = new Map<string, LogEntry[]>();
  const changed = new Set<string>();
  const add = (branch: string, i: number, evict: boolean) => {
    const entry = entries[i] as LogEntry;
    let list = out.get(branch);
    if (!list) out.set(branch, (list = []));
    // Not the same as `entries` once an entry was left out before this one, or replaced.
    if (list.length !== i || evict) changed.add(branch);
    list.push(evict ? [entry[0], evictionOf(entry[1])] : entry);
  };
  for (let i = 0; i < entries.length; i++) {
    const c = (entries[i] as LogEntry)[1];
    if (target !== null) {
      const d = policy.decide(target, c);
      if (d !== 'skip') add(target, i, d === 'evict');
      continue;
    }
    for (const [branch, d] of policy.receivers(c)) add(branch, i, d === 'evict');
  }
  const result = new Map<string, readonly LogEntry[]>();
  for (const [branch, list] of out) result.set(branch, !changed.has(branch) && list.length === entries.length ? entries : list);
  return result;
}

/** The entries one branch receives of those read for it (catch-up pages). */
export function entriesFor<T extends { readonly change: Change }>(policy: RoutingPolicy, branch: string, rows: readonly T[]): T[] {
  const out: T[] = [];
  for (const r of rows) {
    const d = policy.decide(branch, r.change);
    if (d === 'deliver') out.push(r);
    else if (d === 'evict') out.push({ ...r, change: evictionOf(r.change) });
  }
  return out;
}
