/** Session settings the agent's own transactions run with. */
import { ALL_PINS, PINNED } from './types.js';

const pins = ALL_PINS.map((p) => `set_config('${p}', '${PINNED[p]}', true)`);

/**
 * Starts an apply transaction: capture off (no echo) and the same text-form settings as the
 * capture functions, so values read back for conflict records match what a capture would send.
 * `lockTimeoutMs` bounds every lock wait: kept below `deadlock_timeout`, an apply that waits on
 * a local writer which waits on it gives way (and is retried) before PostgreSQL sees a deadlock.
 */
export function applySession(lockTimeoutMs: number): string {
  return `SELECT ${[`set_config('hubsync.applying', 'on', true)`, `set_config('lock_timeout', '${Math.max(1, Math.trunc(lockTimeoutMs))}ms', true)`, ...pins].join(', ')}`;
}

/** The text-form settings alone, for reads and for transactions where capture stays on. */
export const PINNED_SESSION = `SELECT ${pins.join(', ')}`;
