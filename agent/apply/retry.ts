/** Why an apply transaction runs again, and how long to wait first. Pure. */
import { sqlState } from '../db.js';

/**
 * `race`: a row changed between the read and the transaction (HS001 from `hubsync.expect`), read
 * and plan again at once. `lock_timeout`, `deadlock`, `serialization`: a local writer held a row
 * the apply needed; wait a little, with a smaller chunk.
 */
export type RetryReason = 'race' | 'lock_timeout' | 'deadlock' | 'serialization';

export const RETRY_REASONS: readonly RetryReason[] = ['race', 'lock_timeout', 'deadlock', 'serialization'];

export function retryReason(err: unknown): RetryReason | undefined {
  switch (sqlState(err)) {
    case 'HS001':
      return 'race';
    case '55P03':
      return 'lock_timeout';
    case '40P01':
      return 'deadlock';
    case '40001':
      return 'serialization';
    default:
      return undefined;
  }
}

// Failures of one change that say nothing about the next one: bad data, a constraint, a user
// trigger refusing, a table altered since install. Anything else (connection lost, permission
// denied, out of disk) stops the apply so it can be retried as a whole later.
const CHANGE_ERROR_CLASSES = new Set(['22', '23', '42', '44', 'P0', '2F', '38', '39', '54']);

/** An error caused by the data of some change in the transaction: isolate it and dead-letter it. */
export function isChangeError(err: unknown): boolean {
  const s = sqlState(err);
  return s !== undefined && s !== '42501' && CHANGE_ERROR_CLASSES.has(s.slice(0, 2));
}

/**
 * Milliseconds to wait before attempt `attempt` (from 2) after `reason`: after a race, none at
 * first, then a little jitter (the next attempt reads under lock); after a lock timeout or a
 * deadlock, full jitter up to an exponentially growing cap of at most a second, so a local
 * writer holding a hot row gets it back before the apply tries again.
 */
export function retryDelayMs(reason: RetryReason, attempt: number, random: () => number = Math.random): number {
  if (reason === 'race') return attempt <= 2 ? 0 : Math.floor(random() * Math.min(50, 2 ** attempt));
  const cap = Math.min(1000, 5 * 2 ** Math.min(attempt, 10));
  return Math.floor(random() * cap);
}
