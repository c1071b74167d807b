import { ProtocolError } from './errors.js';

/**
 * Hybrid logical clock timestamp: wall-clock milliseconds (48 bits) plus a logical counter
 * (16 bits) that orders events within one millisecond or while the wall clock lags behind.
 */
export interface Hlc {
  readonly wall: number;
  readonly logical: number;
}

export const MAX_LOGICAL = 0xffff;
const MAX_WALL = 2 ** 48 - 1;

export const HLC_ZERO: Hlc = { wall: 0, logical: 0 };

export function compareHlc(a: Hlc, b: Hlc): -1 | 0 | 1 {
  if (a.wall !== b.wall) return a.wall < b.wall ? -1 : 1;
  if (a.logical !== b.logical) return a.logical < b.logical ? -1 : 1;
  return 0;
}

export function maxHlc(a: Hlc, b: Hlc): Hlc {
  return compareHlc(a, b) >= 0 ? a : b;
}

/** The successor of `t`; the counter carries into the wall part so the result stays encodable. */
function tick(t: Hlc): Hlc {
  return t.logical < MAX_LOGICAL ? { wall: t.wall, logical: t.logical + 1 } : { wall: t.wall + 1, logical: 0 };
}

/**
 * 16 lowercase hex digits (12 wall, 4 logical): fixed width, so string order is time order,
 * and it is the hex form of the 64-bit integer `wall << 16 | logical` that agents keep in SQL.
 */
export function encodeHlc(t: Hlc): string {
  return t.wall.toString(16).padStart(12, '0') + t.logical.toString(16).padStart(4, '0');
}

export function decodeHlc(s: string): Hlc {
  if (!/^[0-9a-f]{16}$/.test(s)) throw new ProtocolError('invalid_frame', `not an HLC timestamp: ${s.slice(0, 20)}`);
  return { wall: parseInt(s.slice(0, 12), 16), logical: parseInt(s.slice(12), 16) };
}

/** The 64-bit integer form used in SQL (`bigint`). */
export function hlcToBigInt(t: Hlc): bigint {
  return (BigInt(t.wall) << 16n) | BigInt(t.logical);
}

export function hlcFromBigInt(n: bigint): Hlc {
  return { wall: Number(n >> 16n), logical: Number(n & 0xffffn) };
}

export interface ClockOptions {
  /** Physical time source in ms; injectable for tests. */
  readonly physicalNow?: () => number;
  /** A remote timestamp further ahead of the local wall clock than this is rejected. Default 5 minutes. */
  readonly maxForwardSkewMs?: number;
  /** Last timestamp issued before a restart, so the clock never goes back across restarts. */
  readonly initial?: Hlc;
}

/** A node's hybrid logical clock: monotonic even when the wall clock steps back. */
export class HybridClock {
  private last: Hlc;
  private readonly physicalNow: () => number;
  readonly maxForwardSkewMs: number;

  constructor(options: ClockOptions = {}) {
    this.physicalNow = options.physicalNow ?? Date.now;
    this.maxForwardSkewMs = options.maxForwardSkewMs ?? 5 * 60_000;
    this.last = options.initial ?? HLC_ZERO;
  }

  /** The last timestamp issued or received. */
  get current(): Hlc {
    return this.last;
  }

  /** A timestamp for a local event, after every timestamp issued or received before. */
  now(): Hlc {
    const wall = Math.min(Math.floor(this.physicalNow()), MAX_WALL);
    this.last = wall > this.last.wall ? { wall, logical: 0 } : tick(this.last);
    return this.last;
  }

  /**
   * Merges a remote timestamp: the result is after both the remote and every local timestamp.
   * Throws `ProtocolError('clock_skew')` (leaving the clock unchanged) when the remote is more
   * than `maxForwardSkewMs` ahead of the local wall clock, so one bad clock cannot drag others along.
   */
  receive(remote: Hlc): Hlc {
    const physical = Math.floor(this.physicalNow());
    if (remote.wall - physical > this.maxForwardSkewMs) {
      throw new ProtocolError(
        'clock_skew',
        `remote clock is ${remote.wall - physical} ms ahead; the limit is ${this.maxForwardSkewMs} ms`,
      );
    }
    const wall = Math.min(physical, MAX_WALL);
    const top = maxHlc(this.last, remote);
    this.last = wall > top.wall ? { wall, logical: 0 } : tick(top);
    return this.last;
  }
}
