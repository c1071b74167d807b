/**
 * The tables this branch may send, as the hub's routes say (`hello.send_tables`), and the
 * outbox changes of other tables, which are not sent: the hub would refuse the whole batch.
 * Pure. They are deleted from the outbox and counted (a branch that changes, say, the
 * catalogue it only receives keeps that change to itself; docs/sync-semantics.md "Routing").
 */
import type { Change } from '../protocol/index.js';
import { anyTableMatcher } from '../protocol/table-pattern.js';

/** A predicate over table names; null when every table may be sent (no routes). */
export function sendableTables(patterns: readonly string[] | undefined): ((table: string) => boolean) | null {
  return patterns === undefined ? null : anyTableMatcher(patterns);
}

export interface Kept {
  readonly changes: Change[];
  readonly seqs: string[];
  /** Outbox rows not to send, and their tables. */
  readonly dropped: { readonly seq: string; readonly table: string }[];
}

/** The changes that may be sent; a transaction whose last change was dropped ends on its last kept one. */
export function keepSendable(changes: readonly Change[], seqs: readonly string[], sendable: (table: string) => boolean): Kept {
  const kept: Change[] = [];
  const keptSeqs: string[] = [];
  const dropped: { seq: string; table: string }[] = [];
  const ended = new Set<string>();
  changes.forEach((c, i) => {
    if (c.tx_end) ended.add(c.tx);
    if (sendable(c.table)) {
      kept.push(c);
      keptSeqs.push(seqs[i] as string);
    } else {
      dropped.push({ seq: seqs[i] as string, table: c.table });
    }
  });
  const seen = new Set<string>();
  for (let i = kept.length - 1; i >= 0; i--) {
    const c = kept[i] as Change;
    if (seen.has(c.tx)) continue;
    seen.add(c.tx);
    if (ended.has(c.tx) && !c.tx_end) kept[i] = { ...c, tx_end: true };
  }
  return { changes: kept, seqs: keptSeqs, dropped };
}
