/**
 * The apply engine: writes changes received from the hub into the branch database
 * (docs/architecture.md "Apply"). A delivery is cut into chunks of whole source transactions
 * (chunks.ts); per chunk the engine reads the rows without locking them, plans every write
 * (plan.ts), and sends the transaction as one message (statements.ts) that locks the rows in a
 * global order, checks they are still as read, writes, and moves the cursor. Nothing is decided
 * while a transaction is open, so local writers wait at most for that one message.
 *
 * Entries at or below the cursor are skipped and the cursor moves in the same transaction, so a
 * crash at any step applies nothing twice. A change the database refuses is isolated (the chunk
 * is halved until that change stands alone) and goes to `dead_letter`; the stream goes on.
 */
import type pg from 'pg';
import type { Version } from '../../protocol/conflict.js';
import { encodeHlc, hlcFromBigInt } from '../../protocol/hlc.js';
import type { ColumnState } from '../../protocol/merge.js';
import type { Change, LogEntry, TenantPolicy, VersionVector } from '../../protocol/messages.js';
import type { TableInfo } from '../catalog.js';
import { sqlState } from '../db.js';
import { concurrentReport, deadLetterReport } from '../reports.js';
import { isSchemaChange } from '../../protocol/schema-entry.js';
import { applySchemaChange } from '../schema/apply.js';
import { quoteTable } from '../sql/ident.js';
import { chunkLength, nextBudget } from './chunks.js';
import { emptyAcc, type Acc, type ApplyResult } from './result.js';

export type { ApplyResult } from './result.js';
import { planChunk, rowIdentity, rowsToRead, type Forced, type Item, type Plan, type RowRead } from './plan.js';
import { isChangeError, retryDelayMs, retryReason } from './retry.js';
import { applyMessage, CAST_TYPES_SQL, readMessage, tableSql, type TableSql } from './statements.js';

export const DEFAULT_POLICY: TenantPolicy = { conflict_strategy: 'last-write-wins', branch_priority: [] };

/** Test hooks: fail or kill the apply at a chosen step. */
export interface ApplyHooks {
  /** Before every message the engine sends; `n` counts from 1 within one `deliver` or snapshot chunk. */
  beforeStatement?(n: number, backendPid: number, text: string): void | Promise<void>;
  /** After an apply transaction committed, before its result is used. */
  afterCommit?(): void | Promise<void>;
}

export interface ApplyEngineOptions {
  readonly branchId: string;
  /** A remote HLC further ahead of the local clock is applied but does not raise `clock_floor`. */
  readonly maxForwardSkewMs: number;
  readonly policy?: TenantPolicy;
  /** Attempts of one chunk after lock timeouts, deadlocks or serialization failures, before giving up. */
  readonly maxAttempts?: number;
  /** Most distinct rows one apply transaction writes (default 1000). */
  readonly maxRowsPerTransaction?: number;
  /** Longest an apply waits for one row lock before giving way to the local writer (default 200 ms). */
  readonly lockTimeoutMs?: number;
  readonly now?: () => number;
  readonly hooks?: ApplyHooks;
}


/** How long chunks keep reading under lock after one raced twice. */
const LOCKED_READ_MS = 5000;

/** A chunk could not be applied because of the data of one of its changes. */
class ChangeRefused extends Error {
  override readonly name = 'ChangeRefused';
  constructor(override readonly cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause));
  }
}

/** Local writers kept the chunk's rows: cut it smaller and try again. */
class Contended extends Error {
  override readonly name = 'Contended';
}

interface ReadRow {
  ord: number;
  pk: Record<string, string>;
  pk_text: string;
  cur: Record<string, string | null> | null;
  vv: VersionVector | null;
  hlc: string | null;
  origin: string | null;
  deleted: boolean | null;
  cols: ColumnState | null;
}


const results = (r: pg.QueryResult | pg.QueryResult[]): pg.QueryResult[] => (Array.isArray(r) ? r : [r]);

export class ApplyEngine {
  private policy: TenantPolicy;
  private installed: ReadonlyMap<string, TableInfo>;
  private order: readonly TableInfo[];
  private readonly sql = new Map<string, TableSql>();
  private readonly now: () => number;
  private readonly maxRows: number;
  private budget: number;
  private readonly lockTimeoutMs: number;
  /** Until then (performance.now()), chunks read their rows under lock. */
  private lockedUntil = 0;

  constructor(
    private readonly pool: pg.Pool,
    tables: ReadonlyMap<string, TableInfo>,
    private readonly options: ApplyEngineOptions,
  ) {
    this.installed = tables;
    this.order = [...tables.values()];
    this.policy = options.policy ?? DEFAULT_POLICY;
    this.now = options.now ?? Date.now;
    this.maxRows = Math.max(1, options.maxRowsPerTransaction ?? 1000);
    this.budget = this.maxRows;
    this.lockTimeoutMs = options.lockTimeoutMs ?? 200;
  }

  /** The synced tables, as installed (a schema change may change them). */
  get tables(): ReadonlyMap<string, TableInfo> {
    return this.installed;
  }

  /** After a schema change: the tables as installed now. */
  private reload(tables: ReadonlyMap<string, TableInfo>): void {
    this.installed = tables;
    this.order = [...tables.values()];
    this.sql.clear();
  }

  /** Local writers are contending for the rows applied lately (chunks read them under lock). */
  get contended(): boolean {
    return performance.now() < this.lockedUntil;
  }

  /**
   * The tenant policy from the hub's `hello`. The branch priority is also kept in the database:
   * the capture of column-level tables ranks the writers of a column by it (protocol/merge.ts).
   */
  async setPolicy(policy: TenantPolicy): Promise<void> {
    this.policy = policy;
    await this.pool.query(
      `UPDATE hubsync.apply_state SET priority = $1, conflict_strategy = $2
       WHERE priority IS DISTINCT FROM $1::text[] OR conflict_strategy IS DISTINCT FROM $2`,
      [policy.branch_priority, policy.conflict_strategy],
    );
  }

  /** Where the stream stands here: the cursor, and whether the branch was ever bootstrapped. */
  async position(): Promise<{ cursor: number; bootstrapped: boolean }> {
    const { rows } = await this.pool.query<{ cursor: string; bootstrapped: boolean }>(`SELECT "cursor"::text AS cursor, bootstrapped FROM hubsync.apply_state`);
    return { cursor: Number(rows[0]?.cursor ?? 0), bootstrapped: rows[0]?.bootstrapped ?? false };
  }

  /** Following the log from the cursor was enough: nothing this branch needs had been pruned. */
  async markBootstrapped(): Promise<void> {
    await this.pool.query(`UPDATE hubsync.apply_state SET bootstrapped = true`);
  }

  /**
   * Applies one or more `sync.deliver`s: entries above the cursor, moving the cursor with every
   * chunk. A schema change among them is applied on its own, after the entries before it and
   * before those after it (agent/schema/apply.ts); one this branch cannot apply stops the
   * delivery there (`SchemaBlocked`), with everything before it applied.
   */
  deliver(entries: readonly LogEntry[]): Promise<ApplyResult> {
    return this.run(
      entries.map(([offset, change]) => ({ offset, change })),
      'deliver',
    );
  }

  /** Applies one snapshot chunk; the cursor does not move. Schema changes come first in a snapshot. */
  snapshotChunk(rows: readonly Change[]): Promise<ApplyResult> {
    return this.run(
      rows.map((change) => ({ offset: null, change })),
      'snapshot',
    );
  }

  /** After `snapshot.end`: sync continues after the snapshot's offset. */
  async finishSnapshot(offset: number): Promise<void> {
    await this.pool.query(`UPDATE hubsync.apply_state SET "cursor" = $1, bootstrapped = true, last_apply_at = now()`, [offset]);
  }

  private async run(items: readonly Item[], mode: 'deliver' | 'snapshot'): Promise<ApplyResult> {
    const acc = emptyAcc();
    if (items.length === 0) acc.cursor = (await this.position()).cursor;
    let from = 0;
    for (let i = 0; i <= items.length; i++) {
      const it = items[i];
      if (it !== undefined && !isSchemaChange(it.change)) continue;
      if (i > from) await this.rows(items.slice(from, i), mode, acc);
      from = i + 1;
      if (it === undefined) break;
      const done = await applySchemaChange(this.pool, this.options.branchId, it.offset, it.change);
      this.reload(done.tables);
      acc.schemaChanges++;
      if (it.offset !== null) acc.cursor = done.cursor;
    }
    const { sent: _sent, ...result } = acc;
    return result;
  }

  /** Row changes, in chunks sized by how contended the rows are. */
  private async rows(items: readonly Item[], mode: 'deliver' | 'snapshot', acc: Acc): Promise<void> {
    let contendedAttempts = 0;
    for (let from = 0; from < items.length; ) {
      const n = chunkLength(items, from, this.budget);
      try {
        await this.isolating(items.slice(from, from + n), mode, acc);
        this.budget = nextBudget(this.budget, false, this.maxRows);
        contendedAttempts = 0;
        from += n;
      } catch (err) {
        if (!(err instanceof Contended)) throw err;
        this.budget = nextBudget(this.budget, true, this.maxRows);
        if (++contendedAttempts >= (this.options.maxAttempts ?? 50)) throw err;
      }
    }
  }

  /** Applies a chunk; when the database refuses one of its changes, halves it until that change stands alone, and dead-letters it. */
  private async isolating(items: readonly Item[], mode: 'deliver' | 'snapshot', acc: Acc): Promise<void> {
    try {
      await this.chunk(items, mode, acc);
    } catch (err) {
      if (!(err instanceof ChangeRefused)) throw err;
      if (items.length === 1) {
        const e = err.cause;
        const state = sqlState(e) ?? null;
        await this.chunk(items, mode, acc, new Map([[0, { reason: `${state}: ${e instanceof Error ? e.message : String(e)}`, sqlstate: state }]]));
        return;
      }
      acc.fallbacks++;
      const half = Math.ceil(items.length / 2);
      await this.isolating(items.slice(0, half), mode, acc);
      await this.isolating(items.slice(half), mode, acc);
    }
  }

  /**
   * One chunk: read, plan, apply; again on a race (at once) or a contended lock (after a pause,
   * throwing `Contended` to get a smaller chunk). After a second race the chunk's rows are read
   * under lock in the apply transaction itself (local writers keep changing them faster than a
   * read before it stays true), and so are the next chunks' for a few seconds.
   */
  private async chunk(items: readonly Item[], mode: 'deliver' | 'snapshot', acc: Acc, forced?: ReadonlyMap<number, Forced>): Promise<void> {
    let races = 0;
    for (let attempt = 1; ; attempt++) {
      const locked = races >= 2 || performance.now() < this.lockedUntil;
      const client = await this.pool.connect();
      // A connection lost mid-apply surfaces as the failing query; its 'error' event must not crash us
      // (whatever pool the engine was given).
      const onError = (): void => undefined;
      client.on('error', onError);
      let broken = false;
      try {
        const send = async (text: string, values?: unknown[]): Promise<pg.QueryResult[]> => {
          acc.sent++;
          await this.options.hooks?.beforeStatement?.(acc.sent, (client as unknown as { processID: number }).processID, text);
          return results(await client.query(text, values));
        };
        try {
          const { cursor, stored, reads } = await this.read(items, mode, send, forced, locked);
          acc.cursor = stored;
          const plan = planChunk({ items, cursor, reads, ctx: this.context(), ...(forced ? { forced } : {}) });
          if (plan.top === (cursor ?? 0) && mode === 'deliver' && plan.rows.length === 0 && plan.deadLetters.length === 0) {
            // Everything at or below the cursor: nothing to write.
            if (locked) await client.query('ROLLBACK');
            acc.skipped += plan.skipped;
            return;
          }
          const message = applyMessage({ plan, cursor, tables: this.order, sqlOf: (t) => this.sqlOf(t), lockTimeoutMs: this.lockTimeoutMs });
          const res = await send(locked ? `${message.text};\nCOMMIT` : message.text);
          acc.transactions++;
          if (locked) acc.lockedReads++;
          await this.options.hooks?.afterCommit?.();
          this.account(plan, res, message, acc);
          if (mode === 'deliver') acc.cursor = plan.top;
          return;
        } catch (err) {
          // The locked path leaves its failed transaction open on the connection.
          if (locked) {
            await client.query('ROLLBACK').catch(() => {
              throw err;
            });
          }
          const reason = retryReason(err);
          if (reason === undefined) {
            if (forced === undefined && isChangeError(err)) throw new ChangeRefused(err);
            throw err;
          }
          acc.retries[reason]++;
          if (reason === 'race' && ++races >= 2) this.lockedUntil = performance.now() + LOCKED_READ_MS;
          const delay = retryDelayMs(reason, attempt);
          if (delay > 0) await new Promise((r) => setTimeout(r, delay));
          if (reason !== 'race') throw new Contended(reason);
          if (attempt >= 20) throw new Contended('local writers kept changing the rows being applied');
          continue;
        }
      } catch (err) {
        broken = !(err instanceof ChangeRefused || err instanceof Contended);
        throw err;
      } finally {
        // A failed client may be disconnected or mid-message: never hand it back.
        if (!broken) client.off('error', onError);
        client.release(broken);
      }
    }
  }

  private async read(
    items: readonly Item[],
    mode: 'deliver' | 'snapshot',
    send: (text: string, values?: unknown[]) => Promise<pg.QueryResult[]>,
    forced: ReadonlyMap<number, Forced> | undefined,
    locked: boolean,
  ): Promise<{ cursor: number | null; stored: number; reads: Map<string, RowRead> }> {
    const wanted = rowsToRead(items, this.tables, forced);
    const byTable = new Map<TableInfo, string[][]>();
    for (const { table, key } of wanted.values()) {
      const list = byTable.get(table);
      if (list) list.push([...key]);
      else byTable.set(table, [[...key]]);
    }
    for (const t of byTable.keys()) await this.ensureCasts(t, send);
    const msg = readMessage(byTable, this.order, (t) => this.sqlOf(t), locked ? this.lockTimeoutMs : undefined);
    // A key that is no value of its column's type fails the read; the caller isolates it like a write.
    const res = await send(msg.text);
    const cursorRow = (res[msg.cursorResult]?.rows[0] ?? null) as { cursor: string } | null;
    if (!cursorRow) throw new Error('hubsync is not installed in this database (no hubsync.apply_state row)');
    const reads = new Map<string, RowRead>();
    for (const t of msg.tables) {
      for (const r of (res[t.result]?.rows ?? []) as ReadRow[]) {
        const key = t.keys[r.ord - 1] as readonly string[];
        const version: Version | null =
          r.vv === null || r.hlc === null || r.origin === null || r.deleted === null
            ? null
            : { vv: r.vv, hlc: encodeHlc(hlcFromBigInt(BigInt(r.hlc))), origin: r.origin, deleted: r.deleted };
        reads.set(rowIdentity(t.table.name, key), {
          pk: r.pk,
          pkText: r.pk_text,
          cur: r.cur,
          version,
          stored: r.hlc === null || r.vv === null ? null : { hlc: r.hlc, vv: r.vv },
          cols: r.cols,
        });
      }
    }
    const stored = Number(cursorRow.cursor);
    return { cursor: mode === 'deliver' ? stored : null, stored, reads };
  }

  private async ensureCasts(t: TableInfo, send: (text: string, values?: unknown[]) => Promise<pg.QueryResult[]>): Promise<void> {
    if (this.sql.has(t.name)) return;
    const res = await send(CAST_TYPES_SQL, [quoteTable(t.name)]);
    const rows = (res[0]?.rows ?? []) as { name: string; cast: string }[];
    this.sql.set(t.name, tableSql(t, new Map(rows.map((r) => [r.name, r.cast]))));
  }

  private sqlOf(t: TableInfo): TableSql {
    const s = this.sql.get(t.name);
    if (!s) throw new Error(`no statements for ${t.name}`);
    return s;
  }

  private context(): { policy: TenantPolicy; tables: ReadonlyMap<string, TableInfo>; branchId: string; maxSkewMs: number; now: number } {
    return { policy: this.policy, tables: this.tables, branchId: this.options.branchId, maxSkewMs: this.options.maxForwardSkewMs, now: this.now() };
  }

  private account(plan: Plan, res: readonly pg.QueryResult[], message: { conflicts: number | null; deadLetters: number | null }, acc: Acc): void {
    acc.applied += plan.applied;
    acc.skipped += plan.skipped;
    acc.merged += plan.merged;
    acc.skewed += plan.skewed;
    acc.conflicts += plan.conflicts.length;
    acc.deadLetters += plan.deadLetters.length;
    if (message.conflicts !== null) {
      const ids = (res[message.conflicts]?.rows ?? []) as { id: string; detected_at: Date }[];
      plan.conflicts.forEach((c, i) => {
        const rec = ids[i];
        if (!c.report || !rec) return;
        acc.reports.push({
          kind: 'conflict',
          id: rec.id,
          conflict: concurrentReport({
            table: c.table,
            pk: c.pk,
            strategy: c.strategy,
            winner: c.local,
            loser: c.incoming,
            winnerRow: c.localRow,
            loserRow: c.incoming.deleted ? null : c.incomingRow,
            detectedAt: rec.detected_at,
          }),
        });
      });
    }
    if (message.deadLetters !== null) {
      const ids = (res[message.deadLetters]?.rows ?? []) as { id: string; failed_at: Date }[];
      plan.deadLetters.forEach((d, i) => {
        const rec = ids[i];
        if (!rec) return;
        acc.reports.push({
          kind: 'dead-letter',
          id: rec.id,
          conflict: deadLetterReport({
            change: d.item.change,
            reason: d.reason,
            strategy: d.strategy,
            local: d.local,
            branch: this.options.branchId,
            detectedAt: rec.failed_at,
          }),
        });
      });
    }
  }
}
