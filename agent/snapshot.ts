/**
 * Bootstrap from a hub snapshot (docs/architecture.md "Snapshots"): every chunk goes through the
 * normal apply engine in its own transaction (so the maximal versions resolve exactly as live
 * changes do), the cursor stays where it is until `snapshot.end`, then becomes the snapshot's
 * offset and the branch counts as bootstrapped.
 */
import type { SnapshotBegin, SnapshotChunk, SnapshotEnd } from '../protocol/messages.js';
import type { ApplyEngine, ApplyResult } from './apply/engine.js';

export interface SnapshotProgress {
  readonly snapshotId: string;
  /** Rows applied so far. */
  readonly rows: number;
  /** Rows the hub announced. */
  readonly total: number;
  /** 0–100; 100 when the snapshot is empty or done. */
  readonly percent: number;
  readonly done: boolean;
}

/** Raised for chunks that do not belong to the snapshot in progress. */
export class SnapshotError extends Error {
  override readonly name = 'SnapshotError';
}

export function percentOf(rows: number, total: number): number {
  if (total <= 0) return 100;
  return Math.min(100, Math.floor((rows * 1000) / total) / 10);
}

export class SnapshotReceiver {
  private current: { id: string; offset: number; total: number; rows: number; nextSeq: number } | undefined;

  constructor(
    private readonly engine: ApplyEngine,
    private readonly onProgress: (p: SnapshotProgress) => void = () => undefined,
  ) {}

  get inProgress(): boolean {
    return this.current !== undefined;
  }

  begin(m: SnapshotBegin): void {
    this.current = { id: m.snapshot_id, offset: m.offset, total: m.total_rows, rows: 0, nextSeq: 0 };
    this.progress(false);
  }

  /** Applies one chunk; acknowledge it to the hub after this resolves. */
  async chunk(m: SnapshotChunk): Promise<ApplyResult | null> {
    const s = this.current;
    if (!s || s.id !== m.snapshot_id) throw new SnapshotError(`chunk of unknown snapshot ${m.snapshot_id}`);
    // A chunk seen again (resent after a lost ack) is applied again harmlessly, but not counted twice.
    const result = m.rows.length > 0 ? await this.engine.snapshotChunk(m.rows) : null;
    if (m.seq >= s.nextSeq) {
      s.rows += m.rows.length;
      s.nextSeq = m.seq + 1;
    }
    this.progress(false);
    return result;
  }

  /** The snapshot is complete: sync continues after its offset. */
  async end(m: SnapshotEnd): Promise<number> {
    const s = this.current;
    if (!s || s.id !== m.snapshot_id) throw new SnapshotError(`end of unknown snapshot ${m.snapshot_id}`);
    await this.engine.finishSnapshot(m.offset);
    s.rows = Math.max(s.rows, m.rows);
    s.total = Math.max(s.total, m.rows);
    this.progress(true);
    this.current = undefined;
    return m.offset;
  }

  /** The connection dropped mid-snapshot: the next one bootstraps again from scratch. */
  abandon(): void {
    this.current = undefined;
  }

  private progress(done: boolean): void {
    const s = this.current;
    if (!s) return;
    this.onProgress({ snapshotId: s.id, rows: s.rows, total: s.total, percent: done ? 100 : percentOf(s.rows, s.total), done });
  }
}
