/**
 * The outbox: captured changes waiting for the hub, read in `seq` order, grouped into whole
 * source transactions, and deleted only after `sync.ack`. Every committed row still here is
 * unsent, so a transaction that commits late (holding lower seqs than changes already sent) is
 * simply read on a later pass: there is no watermark that could skip it. A transaction becomes
 * visible all at once at commit, so batches hold whole transactions.
 *
 * We deliberately do not read "below the snapshot horizon" as PgQ does: that horizon is
 * server-wide, so one long writing transaction in any database of the branch's server would stop
 * all syncing, and deleting what was acknowledged already tracks what was sent, row by row.
 */
import type { Change, Op, Row, VersionVector } from '../protocol/messages.js';
import type { ColumnState } from '../protocol/merge.js';
import { keepSendable } from './send-tables.js';
import { encodeHlc, hlcFromBigInt } from '../protocol/hlc.js';
import { normalize } from '../protocol/version-vector.js';
import type { Queryable } from './db.js';

export interface TxCount {
  readonly tx: string;
  /** Changes of the transaction still to send. */
  readonly count: number;
}

export interface PlannedTx {
  readonly tx: string;
  /** How many of its changes go into this batch (the first ones, in seq order). */
  readonly take: number;
  /** The batch holds the transaction's last change. */
  readonly end: boolean;
}

/**
 * Which transactions go into the next batch, given the candidates in order of their first
 * change. Whole transactions while they fit in `batchSize`; a transaction larger than that goes
 * alone and whole if the hub takes it (`maxPerBatch`), else in parts of `maxPerBatch`. Pure.
 */
export function planBatch(candidates: readonly TxCount[], batchSize: number, maxPerBatch: number): PlannedTx[] {
  const size = Math.max(1, Math.min(batchSize, maxPerBatch));
  const out: PlannedTx[] = [];
  let total = 0;
  for (const t of candidates) {
    if (total + t.count <= size) {
      out.push({ tx: t.tx, take: t.count, end: true });
      total += t.count;
      continue;
    }
    if (out.length === 0) {
      out.push(t.count <= maxPerBatch ? { tx: t.tx, take: t.count, end: true } : { tx: t.tx, take: maxPerBatch, end: false });
    }
    break;
  }
  return out;
}

interface LogRow {
  seq: string;
  tx: string;
  tbl: string;
  op: Op;
  pk: Row;
  row: Row | null;
  /** The row before an update or delete (schema version 3). */
  old: Row | null;
  hlc: string;
  vv: VersionVector;
  /** Column-level tables: the row's column state after the change (schema version 4). */
  cols: ColumnState | null;
}

export interface OutboxBatch {
  /** In send order: transactions whole and contiguous, each in seq order, `tx_end` on its last change here. */
  readonly changes: readonly Change[];
  /** The outbox rows, to delete once the hub acknowledged them. */
  readonly seqs: readonly string[];
  /** Changes were left for a later batch (the batch size cut), rather than this one taking all there was. */
  readonly more: boolean;
}

export interface ReadOptions {
  readonly batchSize: number;
  /** `hello.limits.max_changes_per_batch`. */
  readonly maxPerBatch: number;
  /** Rows already sent and not yet acknowledged (a window of batches in flight). */
  readonly exclude?: readonly string[];
}

/** The old values of the columns an update changed (the rest are in its row). */
export function changedBefore(old: Row, row: Row): Row {
  const out: Row = {};
  for (const k of Object.keys(old)) if (old[k] !== row[k]) out[k] = old[k] ?? null;
  return out;
}

export function toChange(r: LogRow, origin: string, txEnd: boolean): Change {
  const old = r.old === null || r.op === 'insert' ? null : r.op === 'update' && r.row ? changedBefore(r.old, r.row) : r.old;
  const c: Change = {
    table: r.tbl,
    op: r.op,
    pk: r.pk,
    row: r.op === 'delete' ? null : r.row,
    ...(old === null ? {} : { old }),
    ...(r.cols === null ? {} : { cols: r.cols }),
    hlc: encodeHlc(hlcFromBigInt(BigInt(r.hlc))),
    vv: normalize(r.vv),
    origin,
    seq: Number(r.seq),
    tx: r.tx,
  };
  return txEnd ? { ...c, tx_end: true } : c;
}

export class Outbox {
  /** From hello: the tables the hub's routes let this branch send; null: all. */
  sendable: ((table: string) => boolean) | null = null;
  /** Told of outbox rows deleted unsent because their table may not be sent. */
  onUnsendable: (table: string, n: number) => void = () => undefined;

  constructor(
    private readonly q: Queryable,
    private readonly branchId: string,
  ) {}

  /**
   * The next batch to send, or null when nothing is waiting. One statement reads the first rows
   * in seq order with how many changes each of their transactions has left; a second is needed
   * only when the plan takes more of a transaction than that first read holds (a transaction cut
   * by the batch size). Rows and counts come from one statement, so they agree.
   */
  async next(options: ReadOptions): Promise<OutboxBatch | null> {
    const exclude = options.exclude ?? [];
    const head = await this.q.query<LogRow & { n: number }>(
      `WITH head AS (
         SELECT seq, tx, tbl, op, pk, "row", old, hlc, vv, cols FROM hubsync.change_log
         WHERE seq <> ALL($1::bigint[]) ORDER BY seq LIMIT $2
       ), n AS (
         SELECT c.tx, count(*)::int AS n FROM hubsync.change_log c
         WHERE c.tx IN (SELECT tx FROM head) AND c.seq <> ALL($1::bigint[]) GROUP BY c.tx
       )
       SELECT h.seq::text AS seq, h.tx::text AS tx, h.tbl, h.op, h.pk, h."row", h.old, h.hlc::text AS hlc, h.vv, h.cols, n.n
         FROM head h JOIN n ON n.tx = h.tx ORDER BY h.seq`,
      // One row more than a batch holds: its transaction tells whether anything is left over.
      [exclude, Math.max(1, Math.min(options.batchSize, options.maxPerBatch)) + 1],
    );
    if (head.rows.length === 0) return null;
    // Rows of one transaction in the head are its first ones (seq order), a prefix of it.
    const byTx = new Map<string, LogRow[]>();
    const count = new Map<string, number>();
    for (const r of head.rows) {
      const list = byTx.get(r.tx);
      if (list) list.push(r);
      else {
        byTx.set(r.tx, [r]);
        count.set(r.tx, r.n);
      }
    }
    const plan = planBatch(
      [...count].map(([tx, n]) => ({ tx, count: n })),
      options.batchSize,
      options.maxPerBatch,
    );
    const short = plan.filter((p) => (byTx.get(p.tx)?.length ?? 0) < p.take);
    if (short.length > 0) {
      const rest = await this.q.query<LogRow>(
        `SELECT seq::text AS seq, tx::text AS tx, tbl, op, pk, "row", old, hlc::text AS hlc, vv, cols FROM hubsync.change_log
         WHERE tx = ANY($1::xid8[]) AND seq <> ALL($2::bigint[]) ORDER BY seq`,
        [short.map((p) => p.tx), exclude],
      );
      for (const p of short) byTx.set(p.tx, []);
      for (const r of rest.rows) byTx.get(r.tx)?.push(r);
    }
    const changes: Change[] = [];
    const seqs: string[] = [];
    for (const p of plan) {
      const part = (byTx.get(p.tx) ?? []).slice(0, p.take);
      part.forEach((r, i) => {
        changes.push(toChange(r, this.branchId, p.end && i === part.length - 1));
        seqs.push(r.seq);
      });
    }
    // Rows acknowledged and deleted between the two reads: nothing left to send from this plan.
    if (changes.length === 0) return null;
    let known = 0;
    for (const n of count.values()) known += n;
    const more = changes.length < known;
    if (!this.sendable) return { changes, seqs, more };
    const kept = keepSendable(changes, seqs, this.sendable);
    if (kept.dropped.length > 0) await this.dropUnsendable(kept.dropped);
    // Everything read was unsendable: read on.
    if (kept.changes.length === 0) return this.next(options);
    return { changes: kept.changes, seqs: kept.seqs, more };
  }

  private async dropUnsendable(dropped: readonly { seq: string; table: string }[]): Promise<void> {
    await this.q.query('DELETE FROM hubsync.change_log WHERE seq = ANY($1::bigint[])', [dropped.map((d) => d.seq)]);
    const byTable = new Map<string, number>();
    for (const d of dropped) byTable.set(d.table, (byTable.get(d.table) ?? 0) + 1);
    for (const [table, n] of byTable) this.onUnsendable(table, n);
  }

  /** The hub holds these changes durably: drop them from the outbox. */
  async acknowledge(seqs: readonly string[]): Promise<void> {
    if (seqs.length === 0) return;
    await this.q.query(
      `WITH d AS (DELETE FROM hubsync.change_log WHERE seq = ANY($1::bigint[]))
       UPDATE hubsync.send_state SET last_ack_at = now()`,
      [seqs],
    );
  }

  /** Changes captured and not yet acknowledged. */
  async pending(): Promise<number> {
    const { rows } = await this.q.query<{ n: string }>(`SELECT count(*) AS n FROM hubsync.change_log`);
    return Number(rows[0]?.n ?? 0);
  }
}
