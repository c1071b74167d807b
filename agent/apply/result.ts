/** What one apply (a delivery or a snapshot chunk) did, as counted while it runs. */
import { RETRY_REASONS, type RetryReason } from './retry.js';
import type { PendingReport } from '../reports.js';

export interface ApplyResult {
  /** Changes written to a business table (including conflicts the incoming side won). */
  readonly applied: number;
  /** Stale or duplicate changes, and entries at or below the cursor. */
  readonly skipped: number;
  /** Concurrent changes of column-level rows merged without losing a write. */
  readonly merged: number;
  readonly conflicts: number;
  readonly deadLetters: number;
  /** Conflicts this branch reports (its own version won) and dead letters, recorded and not yet sent. */
  readonly reports: readonly PendingReport[];
  /** The cursor after this delivery. */
  readonly cursor: number;
  /** Remote timestamps beyond the skew limit (applied, but the local clock did not follow). */
  readonly skewed: number;
  /** Apply transactions run again, by reason. */
  readonly retries: Readonly<Record<RetryReason, number>>;
  /** Chunks halved to isolate a change the database refused. */
  readonly fallbacks: number;
  /** Apply transactions committed. */
  readonly transactions: number;
  /** Of those, transactions that read their rows under lock (rows local writers kept changing). */
  readonly lockedReads: number;
  /** Schema changes applied (or found applied already). */
  readonly schemaChanges: number;
}

/** An apply's running count. */
export interface Acc {
  applied: number;
  skipped: number;
  merged: number;
  conflicts: number;
  deadLetters: number;
  reports: PendingReport[];
  cursor: number;
  skewed: number;
  retries: Record<RetryReason, number>;
  fallbacks: number;
  transactions: number;
  lockedReads: number;
  schemaChanges: number;
  /** Messages sent, for the statement hook. */
  sent: number;
}

export function emptyAcc(): Acc {
  return {
    applied: 0,
    skipped: 0,
    merged: 0,
    conflicts: 0,
    deadLetters: 0,
    reports: [],
    cursor: 0,
    skewed: 0,
    retries: Object.fromEntries(RETRY_REASONS.map((r) => [r, 0])) as Record<RetryReason, number>,
    fallbacks: 0,
    transactions: 0,
    lockedReads: 0,
    schemaChanges: 0,
    sent: 0,
  };
}
