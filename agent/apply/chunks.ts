/**
 * How a delivery is cut into apply transactions. Pure.
 *
 * A chunk is whole source transactions (consecutive changes with the same origin and
 * transaction id), as many as fit in a budget of distinct rows; a source transaction larger
 * than the budget is a chunk of its own. The budget bounds how many rows one apply transaction
 * locks, so how long a local writer can wait behind it; the engine shrinks it while local
 * writers contend for the rows and lets it grow back when they do not.
 */
import type { Item } from './plan.js';

/** Length of the source transaction starting at `from`. */
function transactionLength(items: readonly Item[], from: number): number {
  const first = items[from];
  if (!first) return 0;
  let n = 1;
  while (from + n < items.length) {
    const c = (items[from + n] as Item).change;
    if (c.origin !== first.change.origin || c.tx !== first.change.tx) break;
    n++;
  }
  return n;
}

const rowOf = (it: Item): string => `${it.change.table}\u0000${JSON.stringify(it.change.pk)}`;

/** The length of the chunk starting at `from`: whole source transactions touching at most `budget` distinct rows. */
export function chunkLength(items: readonly Item[], from: number, budget: number): number {
  const rows = new Set<string>();
  let n = 0;
  while (from + n < items.length) {
    const len = transactionLength(items, from + n);
    // Only the transaction's rows not yet counted, so a chunk costs its length, not its length squared.
    const added = new Set<string>();
    for (let i = from + n; i < from + n + len; i++) {
      const r = rowOf(items[i] as Item);
      if (!rows.has(r)) added.add(r);
    }
    if (n > 0 && rows.size + added.size > budget) break;
    for (const r of added) rows.add(r);
    n += len;
    if (rows.size >= budget) break;
  }
  return n;
}

/** The row budget after an attempt: halved when local writers got in the way, grown back by a quarter after a clean one. */
export function nextBudget(budget: number, contended: boolean, max: number, min = 16): number {
  if (contended) return Math.max(min, Math.floor(budget / 2));
  return Math.min(max, Math.max(budget + 1, Math.floor(budget * 1.25)));
}
