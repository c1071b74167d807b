/**
 * The apply engine: writes changes received from the hub into the branch database
 * (docs/architecture.md "Apply"). One database transaction per `sync.deliver` (or snapshot
 * chunk) with capture switched off; a savepoint per source transaction; per change: lock the
 * business row, read its version, `resolve()`, write, compare-and-set the version. Entries at
 * or below `meta.cursor` are skipped and the cursor moves in the same transaction, so a crash
 * at any step applies nothing twice. A change that cannot be applied goes to `dead_letter`
 * and the stream goes on.
 */
import type pg from 'pg';
import { resolve, strategyFor, type Strategy, type Version } from '../protocol/conflict.js';
import { decodeHlc, encodeHlc, hlcFromBigInt, hlcToBigInt } from '../protocol/hlc.js';
import type { Change, LogEntry, Row, TenantPolicy, VersionVector } from '../protocol/messages.js';
import { normalize } from '../protocol/version-vector.js';
import { rowIdentity, runsOf, segmentsOf, type Write } from './apply-plan.js';
import {
  APPLY_SESSION,
  batchStatements,
  CAST_TYPES_SQL,
  CONFLICT_INSERT,
  DEAD_LETTER_INSERT,
  RV_INSERT,
  RV_INSERT_MANY,
  RV_UPDATE,
  RV_UPDATE_MANY,
  tableStatements,
  type BatchStatements,
  type Statement,
  type TableStatements,
} from './apply-sql.js';
import type { TableInfo } from './catalog.js';
import { checkChange, type CheckedChange } from './change-check.js';
import { quoteTable } from './sql/ident.js';
import { isRetryableTransactionError, sqlState } from './db.js';
import { concurrentReport, deadLetterReport, incomingVersion, versionRef, type PendingReport } from './reports.js';

export const DEFAULT_POLICY: TenantPolicy = { conflict_strategy: 'last-write-wins', branch_priority: [] };

/** Test hooks: fail or kill the transaction at a chosen step. */
export interface ApplyHooks {
  /** Before every statement of an apply transaction; `n` counts from 1 within the transaction. */
  beforeStatement?(n: number, backendPid: number, text: string): void | Promise<void>;
  /** After COMMIT returned, before the result is handed back. */
  afterCommit?(): void | Promise<void>;
}

export interface ApplyEngineOptions {
  readonly branchId: string;
  /** A remote HLC further ahead of the local clock is applied but does not raise `clock_floor`. */
  readonly maxForwardSkewMs: number;
  readonly policy?: TenantPolicy;
  /** Whole-transaction attempts on deadlock or serialization failure. */
  readonly maxAttempts?: number;
  readonly now?: () => number;
  readonly hooks?: ApplyHooks;
}

export interface ApplyResult {
  /** Changes written to a business table (including conflicts the incoming side won). */
  readonly applied: number;
  /** Stale or duplicate changes, and entries at or below the cursor. */
  readonly skipped: number;
  readonly conflicts: number;
  readonly deadLetters: number;
  /** Conflicts this branch reports (its own version won) and dead letters, recorded and not yet sent. */
  readonly reports: readonly PendingReport[];
  /** `meta.cursor` after this transaction. */
  readonly cursor: number;
  /** Remote timestamps beyond the skew limit (applied, but the local clock did not follow). */
  readonly skewed: number;
  /** Whole-transaction retries after deadlocks or serialization failures. */
  readonly retries: number;
  /** 1 when the set-based path gave way to the change-by-change path (a race, or a change that failed). */
  readonly fallbacks: number;
}

interface Item {
  readonly offset: number | null;
  readonly change: Change;
}

/** A concurrent local writer got in between: redo the source transaction. */
class Race extends Error {
  override readonly name = 'Race';
}

/** The set-based path met a race or a change it cannot apply: run the delivery change by change. */
class FallBack extends Error {
  override readonly name = 'FallBack';
}

/** Retryable with the whole transaction, like a deadlock. */
class TooManyRaces extends Error {
  override readonly name = 'TooManyRaces';
  readonly code = '40001';
}

const RACE_ATTEMPTS = 8;

// Failures of one change that say nothing about the next one: bad data, a constraint, a
// user trigger refusing, a table altered since install. Anything else (connection lost,
// permission denied, out of disk) stops the apply so it can be retried as a whole later.
const DEAD_LETTER_CLASSES = new Set(['22', '23', '42', '44', 'P0', '2F', '38', '39', '54']);

function isChangeError(err: unknown): boolean {
  const s = sqlState(err);
  return s !== undefined && s !== '42501' && DEAD_LETTER_CLASSES.has(s.slice(0, 2));
}

interface Acc {
  applied: number;
  skipped: number;
  conflicts: number;
  deadLetters: number;
  reports: PendingReport[];
}

const newAcc = (): Acc => ({ applied: 0, skipped: 0, conflicts: 0, deadLetters: 0, reports: [] });

function addAcc(into: Acc, from: Acc): void {
  into.applied += from.applied;
  into.skipped += from.skipped;
  into.conflicts += from.conflicts;
  into.deadLetters += from.deadLetters;
  into.reports.push(...from.reports);
}

interface LockRow {
  pk: Row;
  cur: Row | null;
  vv: VersionVector | null;
  hlc: string | null;
  origin: string | null;
  deleted: boolean | null;
}

function hlcHex(sqlBigint: string): string {
  return encodeHlc(hlcFromBigInt(BigInt(sqlBigint)));
}

function hlcSql(hex: string): string {
  return hlcToBigInt(decodeHlc(hex)).toString();
}

/** The result of the last statement of a query string that held several (pg returns one result per statement). */
function lastResult<R extends pg.QueryResultRow>(r: pg.QueryResult | readonly pg.QueryResult[]): pg.QueryResult<R> {
  const last = Array.isArray(r) ? r[r.length - 1] : r;
  return last as pg.QueryResult<R>;
}

/** Consecutive entries of one source transaction (same origin and tx) form a group. */
function groupByTransaction(items: readonly Item[]): Item[][] {
  const groups: Item[][] = [];
  let last: Item | undefined;
  for (const it of items) {
    const g = groups[groups.length - 1];
    if (g && last && last.change.origin === it.change.origin && last.change.tx === it.change.tx) g.push(it);
    else groups.push([it]);
    last = it;
  }
  return groups;
}

export class ApplyEngine {
  private policy: TenantPolicy;
  private tables: ReadonlyMap<string, TableInfo>;
  private statements = new Map<string, TableStatements>();
  private batches = new Map<string, BatchStatements>();
  private readonly now: () => number;

  constructor(
    private readonly pool: pg.Pool,
    tables: ReadonlyMap<string, TableInfo>,
    private readonly options: ApplyEngineOptions,
  ) {
    this.tables = tables;
    this.policy = options.policy ?? DEFAULT_POLICY;
    this.now = options.now ?? Date.now;
  }

  /** The tenant policy from the hub's `hello`. */
  setPolicy(policy: TenantPolicy): void {
    this.policy = policy;
  }

  /** Applies one `sync.deliver`: entries above the cursor, then moves the cursor, in one transaction. */
  deliver(entries: readonly LogEntry[]): Promise<ApplyResult> {
    return this.run(
      entries.map(([offset, change]) => ({ offset, change })),
      'deliver',
    );
  }

  /** Applies one snapshot chunk in one transaction; the cursor does not move. */
  snapshotChunk(rows: readonly Change[]): Promise<ApplyResult> {
    return this.run(
      rows.map((change) => ({ offset: null, change })),
      'snapshot',
    );
  }

  /** After `snapshot.end`: sync continues after the snapshot's offset. */
  async finishSnapshot(offset: number): Promise<void> {
    await this.pool.query(`UPDATE hubsync.meta SET "cursor" = $1, bootstrapped = true, last_apply_at = now()`, [offset]);
  }

  private async run(items: readonly Item[], mode: 'deliver' | 'snapshot'): Promise<ApplyResult> {
    const max = this.options.maxAttempts ?? 10;
    for (let attempt = 1; ; attempt++) {
      const client = await this.pool.connect();
      // A connection lost mid-apply surfaces as the failing query; its 'error' event must not crash us.
      const onError = (): void => undefined;
      client.on('error', onError);
      let failed = false;
      try {
        let result: Omit<ApplyResult, 'retries' | 'fallbacks'>;
        let fallbacks = 0;
        try {
          result = await new ApplyTransaction(client, this, this.options.hooks).run(items, mode, true);
        } catch (err) {
          if (!(err instanceof FallBack)) throw err;
          fallbacks = 1;
          result = await new ApplyTransaction(client, this, this.options.hooks).run(items, mode, false);
        }
        return { ...result, retries: attempt - 1, fallbacks };
      } catch (err) {
        failed = true;
        if (attempt < max && isRetryableTransactionError(err)) {
          await new Promise((r) => setTimeout(r, Math.random() * Math.min(1000, 10 * 2 ** attempt)));
          continue;
        }
        throw err;
      } finally {
        // A failed client may be mid-transaction or disconnected: never hand it back.
        if (!failed) client.off('error', onError);
        client.release(failed);
      }
    }
  }

  /** @internal */
  context(): { policy: TenantPolicy; tables: ReadonlyMap<string, TableInfo>; branchId: string; maxSkewMs: number; now: number } {
    return {
      policy: this.policy,
      tables: this.tables,
      branchId: this.options.branchId,
      maxSkewMs: this.options.maxForwardSkewMs,
      now: this.now(),
    };
  }

  /** @internal the multi-row statements of `t`, once its cast types are known */
  batchFor(t: TableInfo): BatchStatements | undefined {
    return this.batches.get(t.name);
  }

  /** @internal */
  setCastTypes(t: TableInfo, cast: ReadonlyMap<string, string>): BatchStatements {
    const s = batchStatements(t, cast);
    this.batches.set(t.name, s);
    return s;
  }

  /** @internal */
  statementsFor(t: TableInfo): TableStatements {
    let s = this.statements.get(t.name);
    if (!s) {
      s = tableStatements(t);
      this.statements.set(t.name, s);
    }
    return s;
  }
}

/** One apply transaction on one client. */
class ApplyTransaction {
  private n = 0;
  private readonly ctx: ReturnType<ApplyEngine['context']>;
  /** The local version seen by the last change attempted, for a dead-letter record. */
  private lastLocal: Version | null = null;

  constructor(
    private readonly client: pg.PoolClient,
    private readonly engine: ApplyEngine,
    private readonly hooks: ApplyHooks | undefined,
  ) {
    this.ctx = engine.context();
  }

  private async q<R extends pg.QueryResultRow = pg.QueryResultRow>(
    s: Statement | string,
    values: readonly unknown[] = [],
  ): Promise<pg.QueryResult<R>> {
    this.n++;
    if (this.hooks?.beforeStatement) {
      const text = typeof s === 'string' ? s : s.text;
      await this.hooks.beforeStatement(this.n, (this.client as unknown as { processID: number }).processID, text);
    }
    if (typeof s === 'string') return this.client.query<R>(s, values as unknown[]);
    if (s.replan) return this.client.query<R>(s.text, values as unknown[]);
    return this.client.query<R>({ name: s.name, text: s.text, values: values as unknown[] });
  }

  /**
   * `fast`: the set-based path (see applyMany); it throws `FallBack`, after rolling back, when the
   * delivery needs the change-by-change path.
   */
  async run(items: readonly Item[], mode: 'deliver' | 'snapshot', fast: boolean): Promise<Omit<ApplyResult, 'retries' | 'fallbacks'>> {
    // Statements without parameters share a round trip (simple protocol, several per message):
    // on a busy machine every round trip waits for both processes to be scheduled.
    try {
      const opened = await this.q(`BEGIN; ${APPLY_SESSION}; SELECT "cursor"::text AS cursor FROM hubsync.meta FOR UPDATE`);
      const m = lastResult<{ cursor: string }>(opened).rows[0];
      if (!m) throw new Error('hubsync is not installed in this database (no hubsync.meta row)');
      const cursor = Number(m.cursor);
      const acc = newAcc();
      let todo: Item[] = [];
      let top = cursor;
      if (mode === 'deliver') {
        for (const it of items) {
          const off = it.offset ?? 0;
          if (off <= top) {
            acc.skipped++;
            continue;
          }
          top = off;
          todo.push(it);
        }
      } else {
        todo = [...items];
      }
      let floor = 0n;
      let skewed = 0;
      for (const it of todo) {
        const h = decodeHlc(it.change.hlc);
        if (h.wall - this.ctx.now > this.ctx.maxSkewMs) skewed++;
        else {
          const b = hlcToBigInt(h);
          if (b > floor) floor = b;
        }
      }
      if (fast) {
        try {
          await this.applyMany(todo, acc);
        } catch (err) {
          if (err instanceof Race || isChangeError(err)) throw new FallBack(err instanceof Error ? err.message : String(err));
          throw err;
        }
      } else {
        for (const group of groupByTransaction(todo)) await this.applyGroup(group, acc);
      }
      // Both are numbers (a safe integer and a bigint), so written as literals they share COMMIT's round trip.
      await this.q(
        `UPDATE hubsync.meta SET "cursor" = ${Math.trunc(top)}, clock_floor = greatest(clock_floor, ${floor.toString()}::bigint), last_apply_at = now(); COMMIT`,
      );
      await this.hooks?.afterCommit?.();
      return { ...acc, cursor: top, skewed };
    } catch (err) {
      await this.client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  }

  /**
   * The set-based path: per segment (no row twice, see apply-plan.ts) one statement per table
   * locks the rows and reads their versions, `resolve()` decides in TypeScript, then one
   * statement per run of like writes, and one or two for the versions. A concurrent local writer
   * (a write or version that does not land as read) throws `Race`; the caller then rolls back and
   * applies the delivery change by change.
   */
  private async applyMany(items: readonly Item[], acc: Acc): Promise<void> {
    const checked: (CheckedChange | string)[] = [];
    const ids: string[] = [];
    items.forEach((it, i) => {
      const c = checkChange(it.change, this.ctx.tables);
      checked.push(c.ok ? c : c.reason);
      ids.push(c.ok ? rowIdentity(c.table.name, c.key) : `\u0001${i}`);
    });
    for (const { start, length } of segmentsOf(ids)) {
      await this.applySegment(items.slice(start, start + length), checked.slice(start, start + length), acc);
    }
  }

  private async batch(t: TableInfo): Promise<BatchStatements> {
    const known = this.engine.batchFor(t);
    if (known) return known;
    const res = await this.q<{ name: string; cast: string }>(CAST_TYPES_SQL, [quoteTable(t.name)]);
    return this.engine.setCastTypes(t, new Map(res.rows.map((r) => [r.name, r.cast])));
  }

  private async applySegment(items: readonly Item[], checked: readonly (CheckedChange | string)[], acc: Acc): Promise<void> {
    // Read: lock the rows and read their versions, one statement per table.
    const byTable = new Map<string, number[]>();
    checked.forEach((c, i) => {
      if (typeof c === 'string') return;
      const list = byTable.get(c.table.name);
      if (list) list.push(i);
      else byTable.set(c.table.name, [i]);
    });
    const reads: (LockRow | undefined)[] = [];
    for (const [name, idx] of byTable) {
      const t = (checked[idx[0] as number] as CheckedChange).table;
      const bs = await this.batch(t);
      const keys = t.pk.map((_, j) => idx.map((i) => (checked[i] as CheckedChange).key[j]));
      const res = await this.q<LockRow & { ord: number }>(bs.read, [...keys, name]);
      for (const r of res.rows) reads[idx[r.ord - 1] as number] = r;
    }

    // Decide.
    const writes: Write[] = [];
    const values = new Map<number, (string | null)[]>();
    const rvNew: { i: number; v: Version }[] = [];
    const rvCas: { i: number; v: Version; read: LockRow }[] = [];
    const conflicts: { i: number; local: Version | null; incoming: Version; strategy: Strategy; winner: 'local' | 'incoming' }[] = [];
    for (let i = 0; i < items.length; i++) {
      const it = items[i] as Item;
      const c = checked[i] as CheckedChange | string;
      if (typeof c === 'string') {
        await this.deadLetter(it, c, null, null, acc);
        continue;
      }
      const t = c.table;
      const row = reads[i];
      if (!row) throw new Error('read statement returned no row');
      const mismatch = t.pk.find((col, j) => row.pk[col] !== c.key[j]);
      if (mismatch !== undefined) {
        await this.deadLetter(
          it,
          `key value ${JSON.stringify(it.change.pk[mismatch])} of ${mismatch} is not in the canonical text form of its type (${JSON.stringify(row.pk[mismatch])})`,
          null,
          null,
          acc,
        );
        continue;
      }
      const local: Version | null =
        row.vv === null || row.hlc === null || row.origin === null || row.deleted === null
          ? null
          : { vv: row.vv, hlc: hlcHex(row.hlc), origin: row.origin, deleted: row.deleted };
      const incoming = incomingVersion(it.change);
      const strategy = this.strategy(t);
      const decision = resolve(local, incoming, strategy);
      if (decision.action === 'skip') {
        acc.skipped++;
        continue;
      }
      if (decision.action === 'apply' || decision.winner === 'incoming') {
        const present = row.cur !== null;
        if (it.change.op === 'delete') {
          if (present) writes.push({ table: t.name, kind: 'delete', columns: [], index: i });
        } else if (present) {
          const set = c.columns.filter((col) => !t.pk.includes(col));
          if (set.length > 0) {
            writes.push({ table: t.name, kind: 'update', columns: set, index: i });
            values.set(i, c.values.filter((_, j) => !t.pk.includes(c.columns[j] ?? '')));
          }
        } else {
          writes.push({ table: t.name, kind: 'insert', columns: c.columns, index: i });
          values.set(i, [...c.values]);
        }
        acc.applied++;
      }
      if (local === null) rvNew.push({ i, v: decision.version });
      else rvCas.push({ i, v: decision.version, read: row });
      if (decision.action === 'conflict') conflicts.push({ i, local, incoming, strategy, winner: decision.winner });
    }

    // Write: one statement per run; each must write exactly its rows, else a local writer got in.
    for (const run of runsOf(writes)) {
      const t = this.ctx.tables.get(run.table) as TableInfo;
      const bs = await this.batch(t);
      const keyArrays = (): string[][] => t.pk.map((_, j) => run.indices.map((i) => (checked[i] as CheckedChange).key[j] as string));
      const valueArrays = (): (string | null)[][] => run.columns.map((_, j) => run.indices.map((i) => (values.get(i) as (string | null)[])[j] ?? null));
      let res: pg.QueryResult;
      if (run.kind === 'delete') res = await this.q(bs.delete, keyArrays());
      else if (run.kind === 'insert') res = await this.q(bs.insert(run.columns), valueArrays());
      else res = await this.q(bs.update(run.columns) as Statement, [...keyArrays(), ...valueArrays()]);
      if (res.rowCount !== run.indices.length) throw new Race();
    }

    // Versions: compare-and-set against what was read.
    const pkOf = (i: number): string => JSON.stringify((reads[i] as LockRow).pk);
    const tblOf = (i: number): string => (checked[i] as CheckedChange).table.name;
    if (rvNew.length > 0) {
      const res = await this.q(RV_INSERT_MANY, [
        rvNew.map((r) => tblOf(r.i)),
        rvNew.map((r) => pkOf(r.i)),
        rvNew.map((r) => JSON.stringify(normalize(r.v.vv))),
        rvNew.map((r) => hlcSql(r.v.hlc)),
        rvNew.map((r) => r.v.origin),
        rvNew.map((r) => r.v.deleted),
      ]);
      if (res.rowCount !== rvNew.length) throw new Race();
    }
    if (rvCas.length > 0) {
      const res = await this.q(RV_UPDATE_MANY, [
        rvCas.map((r) => tblOf(r.i)),
        rvCas.map((r) => pkOf(r.i)),
        rvCas.map((r) => JSON.stringify(normalize(r.v.vv))),
        rvCas.map((r) => hlcSql(r.v.hlc)),
        rvCas.map((r) => r.v.origin),
        rvCas.map((r) => r.v.deleted),
        rvCas.map((r) => JSON.stringify(r.read.vv)),
        rvCas.map((r) => r.read.hlc),
      ]);
      if (res.rowCount !== rvCas.length) throw new Race();
    }

    for (const k of conflicts) {
      const c = checked[k.i] as CheckedChange;
      await this.recordConflict(items[k.i] as Item, c.table, reads[k.i] as LockRow, k.local, k.incoming, k.strategy, k.winner, acc);
    }
  }

  private async applyGroup(group: readonly Item[], total: Acc): Promise<void> {
    for (let attempt = 1; attempt <= RACE_ATTEMPTS; attempt++) {
      await this.q('SAVEPOINT hs_tx');
      const acc = newAcc();
      try {
        for (const it of group) await this.applyOne(it, acc);
        await this.q('RELEASE SAVEPOINT hs_tx');
        addAcc(total, acc);
        return;
      } catch (err) {
        if (err instanceof Race) {
          await this.q('ROLLBACK TO SAVEPOINT hs_tx');
          continue;
        }
        if (isChangeError(err)) {
          await this.q('ROLLBACK TO SAVEPOINT hs_tx');
          await this.q('RELEASE SAVEPOINT hs_tx');
          await this.applyOneByOne(group, total);
          return;
        }
        throw err;
      }
    }
    throw new TooManyRaces('local writers kept changing the rows being applied');
  }

  /** A source transaction that failed as a whole: apply what can be applied, dead-letter the rest. */
  private async applyOneByOne(group: readonly Item[], total: Acc): Promise<void> {
    for (const it of group) {
      let done = false;
      for (let attempt = 1; attempt <= RACE_ATTEMPTS && !done; attempt++) {
        await this.q('SAVEPOINT hs_change');
        const acc = newAcc();
        this.lastLocal = null;
        try {
          await this.applyOne(it, acc);
          await this.q('RELEASE SAVEPOINT hs_change');
          addAcc(total, acc);
          done = true;
        } catch (err) {
          await this.q('ROLLBACK TO SAVEPOINT hs_change');
          await this.q('RELEASE SAVEPOINT hs_change');
          if (err instanceof Race) continue;
          if (!isChangeError(err)) throw err;
          const e = err as Error;
          await this.deadLetter(it, `${sqlState(err)}: ${e.message}`, sqlState(err) ?? null, this.lastLocal, total);
          done = true;
        }
      }
      if (!done) throw new TooManyRaces('local writers kept changing the rows being applied');
    }
  }

  private strategy(t: TableInfo | undefined): Strategy {
    return strategyFor(this.ctx.policy, t?.strategy);
  }

  private async applyOne(it: Item, acc: Acc): Promise<void> {
    const change = it.change;
    const checked = checkChange(change, this.ctx.tables);
    if (!checked.ok) {
      await this.deadLetter(it, checked.reason, null, null, acc);
      return;
    }
    const t = checked.table;
    const st = this.engine.statementsFor(t);
    const lock = await this.q<LockRow>(st.lock, [...checked.key, t.name]);
    const row = lock.rows[0];
    if (!row) throw new Error('lock statement returned no row');
    const mismatch = t.pk.find((c, i) => row.pk[c] !== checked.key[i]);
    if (mismatch !== undefined) {
      await this.deadLetter(
        it,
        `key value ${JSON.stringify(change.pk[mismatch])} of ${mismatch} is not in the canonical text form of its type (${JSON.stringify(row.pk[mismatch])})`,
        null,
        null,
        acc,
      );
      return;
    }
    const local: Version | null =
      row.vv === null || row.hlc === null || row.origin === null || row.deleted === null
        ? null
        : { vv: row.vv, hlc: hlcHex(row.hlc), origin: row.origin, deleted: row.deleted };
    this.lastLocal = local;
    const incoming = incomingVersion(change);
    const strategy = this.strategy(t);
    const decision = resolve(local, incoming, strategy);
    if (decision.action === 'skip') {
      acc.skipped++;
      return;
    }
    const present = row.cur !== null;
    if (decision.action === 'apply' || decision.winner === 'incoming') {
      await this.write(st, checked, change, present);
      acc.applied++;
    }
    await this.setVersion(t.name, row.pk, local, row, decision.version);
    if (decision.action === 'conflict') await this.recordConflict(it, t, row, local, incoming, strategy, decision.winner, acc);
  }

  /** Records a conflict; the branch whose own version won reports it (one report per conflicting pair). */
  private async recordConflict(
    it: Item,
    t: TableInfo,
    row: LockRow,
    local: Version | null,
    incoming: Version,
    strategy: Strategy,
    winner: 'local' | 'incoming',
    acc: Acc,
  ): Promise<void> {
    const change = it.change;
    acc.conflicts++;
    const report = winner === 'local' && local !== null && local.origin === this.ctx.branchId;
    const localVersion = local ?? incoming;
    const res = await this.q<{ id: string; detected_at: Date }>(CONFLICT_INSERT, [
      t.name,
      JSON.stringify(row.pk),
      strategy.name,
      winner,
      JSON.stringify(versionRef(localVersion)),
      JSON.stringify(versionRef(incoming)),
      row.cur === null ? null : JSON.stringify(row.cur),
      change.row === null ? null : JSON.stringify(change.row),
      it.offset,
      report,
    ]);
    const rec = res.rows[0];
    if (report && rec) {
      acc.reports.push({
        kind: 'conflict',
        id: rec.id,
        conflict: concurrentReport({
          table: t.name,
          pk: row.pk,
          strategy: strategy.name,
          winner: localVersion,
          loser: incoming,
          winnerRow: row.cur,
          loserRow: change.op === 'delete' ? null : change.row,
          detectedAt: rec.detected_at,
        }),
      });
    }
  }

  private async write(st: TableStatements, c: CheckedChange, change: Change, present: boolean): Promise<void> {
    if (change.op === 'delete') {
      if (present) await this.q(st.delete, c.key);
      return;
    }
    if (present) {
      const u = st.update(c.columns);
      if (u === null) return;
      const values = c.values.filter((_, i) => !c.table.pk.includes(c.columns[i] ?? ''));
      await this.q(u, [...c.key, ...values]);
      return;
    }
    const ins = await this.q(st.insert(c.columns), c.values);
    // A local insert of the same key committed since the lock: resolve again against it.
    if (ins.rowCount === 0) throw new Race();
  }

  private async setVersion(tbl: string, pk: Row, local: Version | null, read: LockRow, v: Version): Promise<void> {
    const vv = JSON.stringify(normalize(v.vv));
    const pkJson = JSON.stringify(pk);
    const res =
      local === null
        ? await this.q(RV_INSERT, [tbl, pkJson, vv, hlcSql(v.hlc), v.origin, v.deleted])
        : await this.q(RV_UPDATE, [tbl, pkJson, vv, hlcSql(v.hlc), v.origin, v.deleted, JSON.stringify(read.vv), read.hlc]);
    // A local writer changed the version since we read it: resolve again against the new one.
    if (res.rowCount === 0) throw new Race();
  }

  private async deadLetter(it: Item, reason: string, state: string | null, local: Version | null, acc: Acc): Promise<void> {
    const t = this.ctx.tables.get(it.change.table);
    const strategy = this.strategy(t);
    const res = await this.q<{ id: string; failed_at: Date }>(DEAD_LETTER_INSERT, [
      it.offset,
      it.change.origin,
      it.change.seq,
      it.change.table,
      JSON.stringify(it.change),
      reason,
      state,
      strategy.name,
      local === null ? null : JSON.stringify(versionRef(local)),
    ]);
    acc.deadLetters++;
    const rec = res.rows[0];
    if (rec) {
      acc.reports.push({
        kind: 'dead-letter',
        id: rec.id,
        conflict: deadLetterReport({
          change: it.change,
          reason,
          strategy: strategy.name,
          local,
          branch: this.ctx.branchId,
          detectedAt: rec.failed_at,
        }),
      });
    }
  }
}
