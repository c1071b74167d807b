/**
 * Serves `snapshot.*`: the tenant's compacted state, read in one REPEATABLE READ transaction,
 * sent in chunks with at most `window` chunks unacknowledged (`snapshot.ack`). The number of
 * snapshots served at once is limited per instance; more wait in line.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import type { Change, HubToAgent } from '../protocol/index.js';
import { SCHEMA_TABLE } from '../protocol/schema-entry.js';
import { compact } from './compactor.js';
import { evictionOf } from './routes/entries.js';
import { HubError } from './errors.js';
import { quoteIdent } from './store/index.js';

export interface SnapshotPeer {
  readonly tenantId: string;
  readonly schema: string;
  send(frame: HubToAgent): void;
  isClosed(): boolean;
  /** With routes: whether the branch holds this version (hub/routes/policy.ts); absent: every version. */
  readonly holds?: (version: Change) => boolean;
  /** A resync (hub/routes/resync.ts): whether a row it holds none of is to be evicted. */
  readonly evicts?: (versions: readonly Change[], changedSinceCursor: boolean) => boolean;
  /** The branch's cursor: rows changed after it may be held here at an older version. */
  readonly cursor?: number;
}

export interface SnapshotLimits {
  readonly concurrency: number;
  readonly chunkRows: number;
  readonly chunkBytes: number;
  readonly window: number;
  /** How long to wait for an acknowledgement before giving up. */
  readonly ackTimeoutMs: number;
  /** Most snapshots waiting for a slot before new requests are refused. */
  readonly maxQueued: number;
}

/** A slot counter with a bounded line. */
class Semaphore {
  private used = 0;
  private readonly line: (() => void)[] = [];
  constructor(
    private readonly slots: number,
    private readonly maxQueued: number,
  ) {}

  get active(): number {
    return this.used;
  }

  /** Resolves when a slot is free; false when the line is full. */
  async acquire(): Promise<boolean> {
    if (this.used < this.slots) {
      this.used++;
      return true;
    }
    if (this.line.length >= this.maxQueued) return false;
    await new Promise<void>((resolve) => this.line.push(resolve));
    return true;
  }

  release(): void {
    const next = this.line.shift();
    if (next) next();
    else this.used--;
  }
}

/** How far a snapshot has come, for status: row versions read of `total`, and what was sent. */
export interface SnapshotProgress {
  total: number;
  scanned: number;
  sent: number;
  evicted: number;
}

export class SnapshotSession {
  readonly id = `s-${randomBytes(6).toString('hex')}`;
  readonly progress: SnapshotProgress = { total: 0, scanned: 0, sent: 0, evicted: 0 };
  private acked = -1;
  private wake: (() => void) | undefined;
  private aborted: string | undefined;

  ack(snapshotId: string, seq: number): void {
    if (snapshotId !== this.id) return;
    if (seq > this.acked) this.acked = seq;
    this.wake?.();
  }

  abort(reason: string): void {
    this.aborted ??= reason;
    this.wake?.();
  }

  /** Waits until chunk `seq` is acknowledged; throws on abort or timeout. */
  async waitAcked(seq: number, timeoutMs: number): Promise<void> {
    while (this.acked < seq) {
      if (this.aborted) throw new HubError('snapshot_unavailable', `snapshot aborted: ${this.aborted}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          this.abort('no snapshot.ack in time');
          resolve();
        }, timeoutMs);
        this.wake = () => {
          clearTimeout(t);
          this.wake = undefined;
          resolve();
        };
      });
    }
    if (this.aborted) throw new HubError('snapshot_unavailable', `snapshot aborted: ${this.aborted}`);
  }

  get abortedReason(): string | undefined {
    return this.aborted;
  }
}

export interface SnapshotOutcome {
  readonly offset: number;
  readonly rows: number;
  /** Evictions sent (a resync). */
  readonly evicted: number;
}

export class SnapshotService {
  private readonly slots: Semaphore;

  constructor(
    private readonly pool: pg.Pool,
    private readonly limits: SnapshotLimits,
  ) {
    this.slots = new Semaphore(limits.concurrency, limits.maxQueued);
  }

  get active(): number {
    return this.slots.active;
  }

  /**
   * Serves one snapshot; resolves with its offset once every chunk was acknowledged and
   * `snapshot.end` sent. Throws `HubError('snapshot_unavailable')` when it cannot.
   */
  async serve(peer: SnapshotPeer, session: SnapshotSession): Promise<SnapshotOutcome> {
    if (!(await this.slots.acquire())) throw new HubError('snapshot_unavailable', 'too many snapshots in progress; retry later');
    try {
      if (peer.isClosed() || session.abortedReason) throw new HubError('snapshot_unavailable', 'connection closed');
      // Fold what the log holds now, so the snapshot is as recent as it can be.
      await compact(this.pool, peer.tenantId, peer.schema);
      return await this.stream(peer, session);
    } finally {
      this.slots.release();
    }
  }

  private async stream(peer: SnapshotPeer, session: SnapshotSession): Promise<SnapshotOutcome> {
    const s = quoteIdent(peer.schema);
    const { chunkRows, chunkBytes, window, ackTimeoutMs } = this.limits;
    const client = await this.pool.connect();
    let offset = 0;
    let seq = -1;
    let sent = 0;
    let evicted = 0;
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      // With routes, total counts every version of the tenant: an upper bound for progress.
      const meta = await client.query<{ offset: string; total: string }>(
        `SELECT m.compacted_upto AS offset, (SELECT coalesce(sum(jsonb_array_length(versions)), 0) FROM ${s}.state) AS total
           FROM ${s}.meta m`,
      );
      offset = Number(meta.rows[0]?.offset ?? 0);
      const total = Number(meta.rows[0]?.total ?? 0);
      session.progress.total = total;
      peer.send({ type: 'snapshot.begin', id: `${session.id}-b`, snapshot_id: session.id, offset, total_rows: total });
      // Schema changes first, in version order, in chunks of their own: the rows after them are
      // at the latest schema (docs/sync-semantics.md "Schema changes").
      // Their keys are `hubsync.schema {…}`: one range of the bytewise-ordered key.
      const schemaKeys = [`${SCHEMA_TABLE} `, `${SCHEMA_TABLE}!`];
      const schemaRows = await client.query<{ versions: Change[]; pos: string }>(
        `SELECT versions, pos FROM ${s}.state WHERE key >= $1 AND key < $2 ORDER BY (pk->>'version')::int`,
        schemaKeys,
      );
      await client.query(`DECLARE snap NO SCROLL CURSOR FOR SELECT versions, pos FROM ${s}.state WHERE NOT (key >= $1 AND key < $2) ORDER BY key`, schemaKeys);
      let chunk: Change[] = [];
      let bytes = 0;
      const flush = async () => {
        if (chunk.length === 0) return;
        // Flow control: at most `window` chunks unacknowledged.
        if (seq - window >= -1) await session.waitAcked(seq - window + 1, ackTimeoutMs);
        if (peer.isClosed()) throw new HubError('snapshot_unavailable', 'connection closed');
        seq++;
        peer.send({ type: 'snapshot.chunk', id: `${session.id}-${seq}`, snapshot_id: session.id, seq, rows: chunk });
        sent += chunk.length;
        session.progress.sent = sent;
        session.progress.evicted = evicted;
        chunk = [];
        bytes = 0;
      };
      const take = async (rows: readonly { versions: Change[]; pos: string }[]): Promise<void> => {
        for (const r of rows) {
          session.progress.scanned += r.versions.length;
          const held = peer.holds ? r.versions.filter(peer.holds) : r.versions;
          // A row held before and not now: one eviction for it (a resync).
          const out = held.length === 0 && r.versions.length > 0 && peer.evicts?.(r.versions, Number(r.pos) > (peer.cursor ?? 0)) ? [evictionOf(r.versions[0] as Change)] : held;
          if (out !== held) evicted++;
          for (const v of out) {
            const size = JSON.stringify(v).length;
            if (chunk.length > 0 && (chunk.length >= chunkRows || bytes + size > chunkBytes)) await flush();
            chunk.push(v);
            bytes += size;
          }
        }
      };
      await take(schemaRows.rows);
      await flush();
      for (;;) {
        const { rows } = await client.query<{ versions: Change[]; pos: string }>('FETCH 500 FROM snap');
        if (rows.length === 0) break;
        await take(rows);
      }
      await flush();
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
    if (seq >= 0) await session.waitAcked(seq, ackTimeoutMs);
    if (peer.isClosed()) throw new HubError('snapshot_unavailable', 'connection closed');
    peer.send({ type: 'snapshot.end', id: `${session.id}-e`, snapshot_id: session.id, offset, rows: sent });
    return { offset, rows: sent, evicted };
  }
}
