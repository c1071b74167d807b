/**
 * How the set-based apply path cuts a delivery into statements. Pure.
 *
 * A delivery is cut into segments in which no row appears twice, so every row's version can be
 * read once, before the segment's writes, and each change still writes its row once. Within a
 * segment, writes that follow each other with the same table, kind and columns form a run, one
 * multi-row statement; runs keep the order of the changes, so constraints between rows (foreign
 * keys, unique columns) see writes in about the order the source made them.
 */

export type WriteKind = 'insert' | 'update' | 'delete';

export interface Write {
  readonly table: string;
  readonly kind: WriteKind;
  /** Columns written (insert: all given; update: the non-key ones; delete: none). */
  readonly columns: readonly string[];
  /** Position of the change in its segment. */
  readonly index: number;
}

export interface Run {
  readonly table: string;
  readonly kind: WriteKind;
  readonly columns: readonly string[];
  readonly indices: readonly number[];
}

/**
 * Splits positions 0..n-1 into consecutive segments in which no identity (`table` and key)
 * repeats. Returns each segment's first position and length.
 */
export function segmentsOf(identities: readonly string[]): { start: number; length: number }[] {
  const out: { start: number; length: number }[] = [];
  let seen = new Set<string>();
  let start = 0;
  identities.forEach((id, i) => {
    if (seen.has(id)) {
      out.push({ start, length: i - start });
      start = i;
      seen = new Set();
    }
    seen.add(id);
  });
  if (identities.length > start) out.push({ start, length: identities.length - start });
  return out;
}

const sameColumns = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && a.every((c, i) => c === b[i]);

/** Consecutive writes of the same table, kind and columns, merged. */
export function runsOf(writes: readonly Write[]): Run[] {
  const runs: { table: string; kind: WriteKind; columns: readonly string[]; indices: number[] }[] = [];
  for (const w of writes) {
    const last = runs[runs.length - 1];
    if (last && last.table === w.table && last.kind === w.kind && sameColumns(last.columns, w.columns)) last.indices.push(w.index);
    else runs.push({ table: w.table, kind: w.kind, columns: w.columns, indices: [w.index] });
  }
  return runs;
}

/** Identity of a row within a delivery: table and key values (as sent). */
export function rowIdentity(table: string, key: readonly string[]): string {
  return `${table}\u0000${key.join('\u0000')}`;
}
