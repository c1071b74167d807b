/**
 * Log retention. Entries at or below `min(compacted_upto, lowest branch cursor)` are pruned;
 * `maxAge` and `maxEntries` prune compacted entries even past slow cursors, and such a branch
 * is told to bootstrap (hello.bootstrap, or snapshot.required when it next reads the log).
 */
import type pg from 'pg';
import { quoteIdent } from './store/index.js';

export interface RetentionInput {
  readonly compactedUpto: number;
  readonly prunedUpto: number;
  readonly head: number;
  /** Lowest cursor of the tenant's branches; null when it has none. */
  readonly minCursor: number | null;
  /** 0 = no limit. */
  readonly maxEntries: number;
  /** Highest offset appended before the age limit; null when none (or no limit). */
  readonly agedUpto: number | null;
}

/** The offset to prune up to (inclusive); never above what compaction folded. Pure. */
export function pruneBound(i: RetentionInput): number {
  const safe = Math.min(i.compactedUpto, i.minCursor ?? i.compactedUpto);
  const bySize = i.maxEntries > 0 ? Math.min(i.compactedUpto, i.head - i.maxEntries) : 0;
  const byAge = i.agedUpto === null ? 0 : Math.min(i.compactedUpto, i.agedUpto);
  return Math.max(i.prunedUpto, safe, bySize, byAge);
}

export interface RetentionOptions {
  readonly maxAgeSeconds: number;
  readonly maxEntries: number;
  /** Most entries deleted per run, so one run never holds a long transaction. */
  readonly maxDeletePerRun?: number;
}

export interface PruneResult {
  readonly prunedUpto: number;
  readonly deleted: number;
}

export async function prune(pool: pg.Pool, schema: string, options: RetentionOptions): Promise<PruneResult> {
  const s = quoteIdent(schema);
  const perRun = options.maxDeletePerRun ?? 50_000;
  const { rows } = await pool.query<{ compacted_upto: string; pruned_upto: string; head: string; min_cursor: string | null }>(
    // Route repair reads compacted entries too (hub/route-repair.ts): nothing it has not read goes.
    `SELECT least(m.compacted_upto, coalesce(m.repaired_upto, m.compacted_upto)) AS compacted_upto, m.pruned_upto,
            greatest(m.pruned_upto, (SELECT coalesce(max(pos), 0) FROM ${s}.log)) AS head,
            (SELECT min(pos) FROM ${s}.cursors) AS min_cursor
       FROM ${s}.meta m`,
  );
  const r = rows[0];
  if (!r) return { prunedUpto: 0, deleted: 0 };
  const prunedUpto = Number(r.pruned_upto);
  let agedUpto: number | null = null;
  if (options.maxAgeSeconds > 0) {
    // Offsets grow with time, so look at the oldest entries only.
    const aged = await pool.query<{ p: string | null }>(
      `SELECT max(pos) AS p FROM (SELECT pos, appended_at FROM ${s}.log WHERE pos > $1 ORDER BY pos LIMIT $2) o
        WHERE appended_at < now() - make_interval(secs => $3)`,
      [prunedUpto, perRun, options.maxAgeSeconds],
    );
    agedUpto = aged.rows[0]?.p == null ? null : Number(aged.rows[0].p);
  }
  const bound = Math.min(
    prunedUpto + perRun,
    pruneBound({
      compactedUpto: Number(r.compacted_upto),
      prunedUpto,
      head: Number(r.head),
      minCursor: r.min_cursor === null ? null : Number(r.min_cursor),
      maxEntries: options.maxEntries,
      agedUpto,
    }),
  );
  if (bound <= prunedUpto) return { prunedUpto, deleted: 0 };
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const del = await client.query(`DELETE FROM ${s}.log WHERE pos > $1 AND pos <= $2`, [prunedUpto, bound]);
    await client.query(`UPDATE ${s}.meta SET pruned_upto = $1 WHERE pruned_upto < $1`, [bound]);
    await client.query('COMMIT');
    return { prunedUpto: bound, deleted: del.rowCount ?? 0 };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
