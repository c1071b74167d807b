/**
 * Conflict notices held for a branch that was offline when another branch reported that its
 * write lost: kept in the tenant schema and sent when it connects, so its operators still see
 * what was overwritten. Bounded per branch; the newest are kept.
 */
import type { ConflictNotify } from '../protocol/index.js';
import { quoteIdent, type Queryable } from './store/index.js';

/** Notices kept per branch; older ones are dropped (the audit log keeps every report). */
export const MAX_NOTICES_PER_BRANCH = 1000;

export async function holdNotice(q: Queryable, schema: string, branch: string, frame: ConflictNotify): Promise<void> {
  const s = quoteIdent(schema);
  await q.query(
    `WITH added AS (INSERT INTO ${s}.notices (branch_id, frame) VALUES ($1, $2) RETURNING id)
     DELETE FROM ${s}.notices
      WHERE branch_id = $1
        AND id <= (SELECT id FROM ${s}.notices WHERE branch_id = $1 ORDER BY id DESC OFFSET $3 LIMIT 1)`,
    [branch, JSON.stringify(frame), MAX_NOTICES_PER_BRANCH - 1],
  );
}

/** Removes and returns the branch's notices, oldest first. */
export async function takeNotices(q: Queryable, schema: string, branch: string): Promise<ConflictNotify[]> {
  const { rows } = await q.query<{ id: string; frame: ConflictNotify }>(
    `DELETE FROM ${quoteIdent(schema)}.notices WHERE branch_id = $1 RETURNING id, frame`,
    [branch],
  );
  return rows.sort((a, b) => Number(a.id) - Number(b.id)).map((r) => r.frame);
}
