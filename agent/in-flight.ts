/**
 * Batches sent to the hub and not yet acknowledged. Their outbox rows are excluded from the next
 * read; after a reconnect the set is cleared and the rows are simply read and sent again (the hub
 * is idempotent on origin and seq). Pure bookkeeping.
 */

export interface SentBatch {
  readonly batchId: string;
  /** Id of the `sync.batch` frame, which an `error` frame refers to. */
  readonly messageId: string;
  readonly seqs: readonly string[];
  readonly sentAt: number;
}

export type AckOutcome =
  | { readonly ok: true; readonly batch: SentBatch }
  | { readonly ok: false; readonly reason: 'unknown_batch' | 'offsets_mismatch' };

export class InFlight {
  private readonly batches = new Map<string, SentBatch>();

  get size(): number {
    return this.batches.size;
  }

  add(b: SentBatch): void {
    this.batches.set(b.batchId, b);
  }

  /** Every outbox row in flight, to exclude from the next read. */
  seqs(): string[] {
    return [...this.batches.values()].flatMap((b) => b.seqs);
  }

  /**
   * The hub acknowledged `batchId` with one offset per change. The batch stays in flight (its rows
   * excluded from reads) until `settle`, once its rows are gone from the outbox; otherwise a read
   * in between would pick them up again.
   */
  ack(batchId: string, offsets: readonly number[]): AckOutcome {
    const b = this.batches.get(batchId);
    if (!b) return { ok: false, reason: 'unknown_batch' };
    if (offsets.length !== b.seqs.length) return { ok: false, reason: 'offsets_mismatch' };
    return { ok: true, batch: b };
  }

  /** The acknowledged batch's rows are deleted: forget it. */
  settle(batchId: string): void {
    this.batches.delete(batchId);
  }

  /** The hub refused the frame `messageId`: forget the batch so its rows are read and sent again. */
  refuse(messageId: string): SentBatch | undefined {
    for (const b of this.batches.values()) {
      if (b.messageId === messageId) {
        this.batches.delete(b.batchId);
        return b;
      }
    }
    return undefined;
  }

  clear(): void {
    this.batches.clear();
  }
}

/**
 * How many changes to put in a batch: the configured size, halved while encoded batches come out
 * larger than the hub's frame limit, and grown back after batches that fit. Pure.
 */
export function nextBatchCap(current: number, configured: number, event: 'too_large' | 'fit'): number {
  if (event === 'too_large') return Math.max(1, Math.floor(current / 2));
  return Math.min(configured, current * 2);
}
