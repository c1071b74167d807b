/**
 * When to reconnect and when to refresh the token: pure arithmetic, decided here and tested
 * exhaustively; the client only does what these functions say.
 */

export interface Backoff {
  /** First retry waits up to this long. */
  readonly baseMs: number;
  /** No wait is longer than this. */
  readonly capMs: number;
}

export const RECONNECT: Backoff = { baseMs: 500, capMs: 60_000 };
/**
 * After the hub announced a restart (close 1001/1012), failed attempts retry on this short
 * schedule for `RESTART_WINDOW_MS`: a restart takes seconds, and the usual schedule would have
 * grown to tens of seconds by the time the hub listens again, leaving it idle while every agent
 * sleeps. Past the window (the restart is not short after all) the usual schedule resumes.
 */
export const RESTART: Backoff = { baseMs: 1000, capMs: 5000 };
export const RESTART_WINDOW_MS = 60_000;
/** How long an agent waits for the hub's answer to its WebSocket upgrade before it tries again. */
export const HANDSHAKE_TIMEOUT_MS = 15_000;
/** Suspended, replaced by another agent, or refused for violations: do not hammer the hub. */
export const LONG: Backoff = { baseMs: 15_000, capMs: 10 * 60_000 };

/**
 * Exponential backoff with full jitter: uniform in [0, min(cap, base·2^attempt)). Full jitter
 * spreads the reconnects of many agents after a hub restart instead of synchronising them.
 * `attempt` counts from 0; `random` returns [0, 1).
 */
export function backoffDelay(attempt: number, b: Backoff, random: () => number = Math.random): number {
  const exp = Math.min(b.capMs, b.baseMs * 2 ** Math.min(Math.max(0, attempt), 30));
  return Math.floor(random() * exp);
}

export type CloseAction =
  /** Reconnect soon (jittered within a second): the hub restarts or sheds load. */
  | { readonly kind: 'reconnect-now'; readonly reason: string; readonly restart?: boolean }
  /** Reconnect with the usual exponential backoff. */
  | { readonly kind: 'reconnect'; readonly reason: string }
  /** Reconnect with the long backoff. */
  | { readonly kind: 'reconnect-later'; readonly reason: string };

/** What to do after the hub closed the socket with `code` (docs/architecture.md "Close codes"). */
export function closeAction(code: number): CloseAction & { readonly newToken: boolean } {
  switch (code) {
    case 1001:
    case 1012:
      return { kind: 'reconnect-now', reason: 'hub going away or restarting', restart: true, newToken: false };
    case 4001:
      return { kind: 'reconnect-now', reason: 'token expired or invalid', newToken: true };
    case 4008:
      return { kind: 'reconnect', reason: 'slow consumer; resuming from the cursor', newToken: false };
    case 1009:
      return { kind: 'reconnect', reason: 'a frame was over the size limit', newToken: false };
    case 4003:
      return { kind: 'reconnect-later', reason: 'tenant or branch suspended or deleted', newToken: true };
    case 4009:
      return { kind: 'reconnect-later', reason: 'replaced by a newer connection of this branch (another agent running?)', newToken: false };
    case 4029:
      return { kind: 'reconnect-later', reason: 'too many protocol violations', newToken: false };
    default:
      return { kind: 'reconnect', reason: `connection closed (${code})`, newToken: false };
  }
}

/**
 * Delay before the next connection attempt, given the close action, consecutive failures, and
 * how long ago the hub announced a restart (undefined: it did not, or the agent connected since).
 */
export function reconnectDelay(action: CloseAction, failures: number, random: () => number = Math.random, sinceRestartMs?: number): number {
  if (action.kind === 'reconnect-now') return Math.floor(random() * 1000);
  if (action.kind === 'reconnect' && sinceRestartMs !== undefined && sinceRestartMs < RESTART_WINDOW_MS) {
    return backoffDelay(failures, RESTART, random);
  }
  return backoffDelay(failures, action.kind === 'reconnect-later' ? LONG : RECONNECT, random);
}

/**
 * When to refresh a token expiring at `expiresAtMs`: at three quarters of its remaining life,
 * and at least a minute before expiry when the lifetime allows, never in the past.
 */
export function refreshDelay(expiresAtMs: number, nowMs: number): number {
  const left = expiresAtMs - nowMs;
  if (left <= 0) return 0;
  const at = Math.min(left * 0.75, Math.max(left - 60_000, left / 2));
  return Math.max(0, Math.floor(at));
}

/** A heartbeat watchdog: no ping or frame for this long means the socket is dead. */
export function deadAfter(heartbeatMs: number): number {
  return Math.max(10_000, Math.ceil(heartbeatMs * 2.5));
}
