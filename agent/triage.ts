/**
 * What a person does about dead letters and conflicts at a branch (`hub-broker agent
 * dead-letters …` and `… conflicts …`, docs/operations.md "Dead letters and conflicts"):
 * - a dead letter is retried through the apply engine once its cause is fixed (say, a unique
 *   value taken locally): applied or found stale, it goes; failing again, it is replaced by one
 *   with the new reason; or it is discarded;
 * - a conflict's losing version is applied as a new local write (`override`): captured like any
 *   other write, it supersedes both versions and travels to every branch.
 */
import type pg from 'pg';
import type { Change, StrategyName, TenantPolicy, TriageRequest, TriageResult, Value } from '../protocol/messages.js';
import { ApplyEngine } from './apply/engine.js';
import { loadInstalledTables, type TableInfo } from './catalog.js';
import { AgentError } from './errors.js';
import { quoteIdent, quoteTable } from './sql/ident.js';

export interface DeadLetterRow {
  readonly id: string;
  readonly failedAt: Date;
  readonly table: string;
  readonly origin: string;
  readonly seq: string;
  readonly reason: string;
  readonly sqlstate: string | null;
  readonly change: Change;
}

export interface ConflictRow {
  readonly id: string;
  readonly detectedAt: Date;
  readonly table: string;
  readonly pk: Record<string, string>;
  readonly strategy: StrategyName;
  readonly winner: 'local' | 'incoming';
  readonly localVersion: unknown;
  readonly incomingVersion: unknown;
  readonly localRow: Record<string, string | null> | null;
  readonly incomingRow: Record<string, string | null> | null;
  readonly columns: { conflicted: string[]; merged: string[] } | null;
  readonly overriddenAt: Date | null;
}

const DEAD = `SELECT id::text AS id, failed_at AS "failedAt", tbl AS "table", origin, seq::text AS seq, reason, sqlstate, change FROM hubsync.dead_letter`;
const CONFLICT = `SELECT id::text AS id, detected_at AS "detectedAt", tbl AS "table", pk, strategy, winner, local_version AS "localVersion",
  incoming_version AS "incomingVersion", local_row AS "localRow", incoming_row AS "incomingRow", columns, overridden_at AS "overriddenAt" FROM hubsync.conflicts`;

const ID = /^\d{1,18}$/;
function checkId(kind: string, id: string): void {
  if (!ID.test(id)) throw new AgentError('not_found', `${kind} id must be a number (got ${JSON.stringify(id.slice(0, 30))})`);
}

export async function listDeadLetters(q: pg.Pool, limit = 100): Promise<DeadLetterRow[]> {
  return (await q.query<DeadLetterRow>(`${DEAD} ORDER BY id LIMIT $1`, [limit])).rows;
}

export async function getDeadLetter(q: pg.Pool, id: string): Promise<DeadLetterRow> {
  checkId('dead letter', id);
  const r = (await q.query<DeadLetterRow>(`${DEAD} WHERE id = $1`, [id])).rows[0];
  if (!r) throw new AgentError('not_found', `no dead letter ${id} here`);
  return r;
}

export async function discardDeadLetter(q: pg.Pool, id: string): Promise<DeadLetterRow> {
  const d = await getDeadLetter(q, id);
  await q.query(`DELETE FROM hubsync.dead_letter WHERE id = $1`, [id]);
  return d;
}

export type RetryOutcome =
  | { readonly result: 'applied' | 'stale' }
  | { readonly result: 'failed'; readonly deadLetter: DeadLetterRow };

/** The apply engine as the running agent has it: installed tables, the policy the hub last sent. */
async function engineFor(pool: pg.Pool, maxForwardSkewMs: number): Promise<ApplyEngine> {
  const tables: Map<string, TableInfo> = await loadInstalledTables(pool);
  const { rows } = await pool.query<{ branch_id: string; priority: string[]; conflict_strategy: StrategyName | null }>(
    `SELECT m.branch_id, a.priority, a.conflict_strategy FROM hubsync.meta m CROSS JOIN hubsync.apply_state a`,
  );
  const r = rows[0];
  if (!r) throw new AgentError('not_installed', 'hubsync is not installed in this database; run hub-broker agent install');
  const policy: TenantPolicy = { conflict_strategy: r.conflict_strategy ?? 'last-write-wins', branch_priority: r.priority };
  return new ApplyEngine(pool, tables, { branchId: r.branch_id, policy, maxForwardSkewMs });
}

/**
 * Applies a dead letter's change again, as the hub first delivered it (its version decides, so a
 * change that newer writes superseded meanwhile is found stale and changes nothing).
 */
export async function retryDeadLetter(pool: pg.Pool, id: string, maxForwardSkewMs = 300_000): Promise<RetryOutcome> {
  const d = await getDeadLetter(pool, id);
  const engine = await engineFor(pool, maxForwardSkewMs);
  const before = await pool.query<{ id: string }>(`SELECT coalesce(max(id), 0)::text AS id FROM hubsync.dead_letter`);
  const r = await engine.snapshotChunk([d.change]);
  await pool.query(`DELETE FROM hubsync.dead_letter WHERE id = $1`, [id]);
  if (r.deadLetters > 0) {
    const again = (await pool.query<DeadLetterRow>(`${DEAD} WHERE id > $1 ORDER BY id DESC LIMIT 1`, [before.rows[0]?.id ?? '0'])).rows[0];
    if (again) return { result: 'failed', deadLetter: again };
  }
  return { result: r.applied > 0 ? 'applied' : 'stale' };
}

export async function listConflicts(q: pg.Pool, limit = 100): Promise<ConflictRow[]> {
  return (await q.query<ConflictRow>(`${CONFLICT} ORDER BY id DESC LIMIT $1`, [limit])).rows;
}

export async function getConflict(q: pg.Pool, id: string): Promise<ConflictRow> {
  checkId('conflict', id);
  const r = (await q.query<ConflictRow>(`${CONFLICT} WHERE id = $1`, [id])).rows[0];
  if (!r) throw new AgentError('not_found', `no conflict ${id} here`);
  return r;
}

/**
 * Writes the version that lost the conflict as a new local write: the row as the loser had it
 * (every carried column), or its deletion when the loser was a delete. The capture trigger
 * records it with a version that has seen both, so every branch takes it.
 */
export async function overrideConflict(pool: pg.Pool, id: string): Promise<{ conflict: ConflictRow; wrote: 'insert' | 'update' | 'delete' | 'nothing' }> {
  const conflict = await getConflict(pool, id);
  if (conflict.overriddenAt) throw new AgentError('not_found', `conflict ${id} was overridden already (${conflict.overriddenAt.toISOString()})`);
  const tables = await loadInstalledTables(pool);
  const t = tables.get(conflict.table);
  if (!t) throw new AgentError('missing_table', `table ${conflict.table} of conflict ${id} is no longer synced here`);
  const losing = conflict.winner === 'local' ? conflict.incomingRow : conflict.localRow;
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    const types = new Map(t.columns.map((x) => [x.name, x.type]));
    const keyMatch = t.pk.map((k, i) => `${quoteIdent(k)} = $${i + 1}::${types.get(k) ?? 'text'}`).join(' AND ');
    const key = t.pk.map((k) => conflict.pk[k] ?? null);
    let wrote: 'insert' | 'update' | 'delete' | 'nothing';
    if (losing === null) {
      const r = await c.query(`DELETE FROM ${quoteTable(t.name)} WHERE ${keyMatch}`, key);
      wrote = (r.rowCount ?? 0) > 0 ? 'delete' : 'nothing';
    } else {
      const cols = t.columns.map((x) => x.name).filter((n) => Object.hasOwn(losing, n));
      const rest = cols.filter((n) => !t.pk.includes(n));
      const values = cols.map((n) => losing[n] ?? null);
      const set = rest.map((n) => `${quoteIdent(n)} = $${t.pk.length + 1 + rest.indexOf(n)}::${types.get(n) ?? 'text'}`).join(', ');
      const updated = rest.length === 0 ? { rowCount: 0 } : await c.query(`UPDATE ${quoteTable(t.name)} SET ${set} WHERE ${keyMatch}`, [...key, ...rest.map((n) => losing[n] ?? null)]);
      if ((updated.rowCount ?? 0) > 0) wrote = 'update';
      else {
        const placeholders = cols.map((n, i) => `$${i + 1}::${types.get(n) ?? 'text'}`).join(', ');
        const r = await c.query(`INSERT INTO ${quoteTable(t.name)} (${cols.map(quoteIdent).join(', ')}) VALUES (${placeholders}) ON CONFLICT DO NOTHING`, values);
        wrote = (r.rowCount ?? 0) > 0 ? 'insert' : 'nothing';
      }
    }
    await c.query(`UPDATE hubsync.conflicts SET overridden_at = now() WHERE id = $1`, [id]);
    await c.query('COMMIT');
    return { conflict, wrote };
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    c.release();
  }
}

/** JSON data only (dates as ISO text), as a frame carries it. */
const plain = (v: unknown): Value => JSON.parse(JSON.stringify(v)) as Value;

/**
 * Answers a `triage.request` from the hub's admin API with what the command line would do.
 * Lists carry summaries (no change bodies), so they fit a frame.
 */
export async function answerTriage(pool: pg.Pool, req: TriageRequest, maxForwardSkewMs: number): Promise<TriageResult> {
  const answer = (status: TriageResult['status'], message: string, body?: unknown): TriageResult => ({
    type: 'triage.result',
    id: req.id,
    status,
    message,
    ...(body === undefined ? {} : { body: plain(body) }),
  });
  const target = req.target ?? '';
  try {
    if (req.kind === 'dead-letters') {
      switch (req.action) {
        case 'list': {
          const rows = await listDeadLetters(pool);
          return answer('ok', `${rows.length} dead letters`, rows.map(({ change, ...d }) => ({ ...d, pk: change.pk })));
        }
        case 'show':
          return answer('ok', `dead letter ${target}`, await getDeadLetter(pool, target));
        case 'retry': {
          const r = await retryDeadLetter(pool, target, maxForwardSkewMs);
          if (r.result === 'failed') return answer('failed', `failed again: ${r.deadLetter.reason}`, { result: 'failed', deadLetter: r.deadLetter });
          return answer('ok', r.result === 'applied' ? 'applied and removed' : 'superseded by newer writes; removed, nothing changed', r);
        }
        case 'discard':
          return answer('ok', 'discarded', await discardDeadLetter(pool, target));
        default:
          return answer('invalid', `dead letters cannot be ${req.action}d`);
      }
    }
    switch (req.action) {
      case 'list':
        return answer('ok', 'conflicts, newest first', await listConflicts(pool));
      case 'show':
        return answer('ok', `conflict ${target}`, await getConflict(pool, target));
      case 'override': {
        const r = await overrideConflict(pool, target);
        return answer('ok', r.wrote === 'nothing' ? 'the losing version is what the row holds already; nothing written' : `the losing version was written (${r.wrote})`, { wrote: r.wrote });
      }
      default:
        return answer('invalid', `conflicts cannot be ${req.action === 'retry' ? 'retried' : `${req.action}ed`}`);
    }
  } catch (err) {
    if (err instanceof AgentError) return answer(err.code === 'not_found' ? 'not_found' : 'failed', err.message);
    return answer('failed', (err as Error).message.split('\n')[0] ?? 'failed');
  }
}
