import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ProtocolError } from './errors.js';
import {
  compareHlc,
  decodeHlc,
  encodeHlc,
  hlcFromBigInt,
  hlcToBigInt,
  HybridClock,
  MAX_LOGICAL,
  type Hlc,
} from './hlc.js';
import { hlcArb } from './testing/arbitraries.js';
import { fcParams } from './testing/fc.js';

const BASE = 1_700_000_000_000;
const SKEW = 5 * 60_000;

/** A physical clock the test moves by hand, in either direction. */
function manualClock(start = BASE): { now: () => number; set: (t: number) => void } {
  let t = start;
  return { now: () => t, set: (v) => (t = v) };
}

const sign = (n: number | bigint): number => (n > 0 ? 1 : n < 0 ? -1 : 0);

/** One step of a node's life: its wall clock jumps (either way), then it stamps or receives. */
const stepArb = fc.record({
  physical: fc.oneof(
    fc.integer({ min: BASE - 3_600_000, max: BASE + 3_600_000 }),
    fc.constant(BASE), // the same millisecond again and again: logical counter at work
  ),
  event: fc.oneof(
    fc.constant({ kind: 'now' as const }),
    fc.record({
      kind: fc.constant('receive' as const),
      // Remote timestamps around the local wall clock; some are beyond the allowed skew.
      aheadMs: fc.integer({ min: -3_600_000, max: 2 * SKEW }),
      logical: fc.integer({ min: 0, max: MAX_LOGICAL }),
    }),
  ),
});

describe('hybrid logical clock', () => {
  it('issues strictly increasing timestamps however the wall clock steps back and forth', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 60 }), (steps) => {
        const phys = manualClock();
        const clock = new HybridClock({ physicalNow: phys.now, maxForwardSkewMs: SKEW });
        let prev: Hlc = clock.current;
        for (const { physical, event } of steps) {
          phys.set(physical);
          if (event.kind === 'now') {
            const t = clock.now();
            expect(compareHlc(t, prev)).toBe(1);
            prev = t;
            continue;
          }
          const remote = { wall: Math.max(0, physical + event.aheadMs), logical: event.logical };
          if (remote.wall - physical > SKEW) {
            expect(() => clock.receive(remote)).toThrow(ProtocolError);
            expect(clock.current).toEqual(prev);
            continue;
          }
          const t = clock.receive(remote);
          expect(compareHlc(t, prev)).toBe(1);
          expect(compareHlc(t, remote)).toBe(1);
          expect(clock.current).toEqual(t);
          prev = t;
        }
      }),
      fcParams(),
    );
  });

  it('receive() returns a timestamp after both the remote one and the last local one', () => {
    fc.assert(
      fc.property(
        hlcArb,
        fc.integer({ min: -SKEW, max: SKEW }),
        fc.integer({ min: 0, max: MAX_LOGICAL }),
        (initial, aheadMs, logical) => {
          const physical = initial.wall + 17;
          const clock = new HybridClock({ physicalNow: () => physical, maxForwardSkewMs: SKEW, initial });
          const remote = { wall: Math.max(0, physical + aheadMs), logical };
          const t = clock.receive(remote);
          expect(compareHlc(t, initial)).toBe(1);
          expect(compareHlc(t, remote)).toBe(1);
        },
      ),
      fcParams(),
    );
  });

  it('orders timestamps totally, and identically as structs, strings and 64-bit integers', () => {
    fc.assert(
      fc.property(hlcArb, hlcArb, (a, b) => {
        const c = compareHlc(a, b);
        expect(compareHlc(b, a)).toBe(-c);
        expect(c === 0).toBe(a.wall === b.wall && a.logical === b.logical);
        const sa = encodeHlc(a);
        const sb = encodeHlc(b);
        expect(sign(sa < sb ? -1 : sa > sb ? 1 : 0)).toBe(c);
        expect(sign(hlcToBigInt(a) - hlcToBigInt(b))).toBe(c);
      }),
      fcParams(),
    );
  });

  it('orders transitively', () => {
    fc.assert(
      fc.property(hlcArb, hlcArb, hlcArb, (a, b, c) => {
        const [x, y, z] = [a, b, c].sort(compareHlc) as [Hlc, Hlc, Hlc];
        expect(compareHlc(x, y)).toBeLessThanOrEqual(0);
        expect(compareHlc(y, z)).toBeLessThanOrEqual(0);
        expect(compareHlc(x, z)).toBeLessThanOrEqual(0);
      }),
      fcParams(),
    );
  });

  it('round-trips through the 16-hex-digit string and the bigint form', () => {
    fc.assert(
      fc.property(hlcArb, (t) => {
        const s = encodeHlc(t);
        expect(s).toMatch(/^[0-9a-f]{16}$/);
        expect(decodeHlc(s)).toEqual(t);
        expect(hlcFromBigInt(hlcToBigInt(t))).toEqual(t);
        expect(BigInt(`0x${s}`)).toBe(hlcToBigInt(t));
      }),
      fcParams(),
    );
  });

  it('rejects strings that are not an encoded timestamp with a ProtocolError', () => {
    for (const bad of ['', '0', '000000000000000G', '0000000000000000 ', 'ABCDEF0123456789', '00000000000000000']) {
      expect(() => decodeHlc(bad)).toThrow(ProtocolError);
    }
  });

  it('carries a full logical counter into the wall part when the clock stands still', () => {
    const wall = BASE;
    const clock = new HybridClock({ physicalNow: () => wall, initial: { wall, logical: MAX_LOGICAL - 1 } });
    expect(clock.now()).toEqual({ wall, logical: MAX_LOGICAL });
    expect(clock.now()).toEqual({ wall: wall + 1, logical: 0 });

    const receiver = new HybridClock({ physicalNow: () => wall - 1000 });
    expect(receiver.receive({ wall, logical: MAX_LOGICAL })).toEqual({ wall: wall + 1, logical: 0 });
  });

  it('stays increasing and encodable through many logical overflows', () => {
    const clock = new HybridClock({ physicalNow: () => BASE });
    let prev = clock.now();
    for (let i = 0; i < 3 * (MAX_LOGICAL + 1); i++) {
      const t = clock.now();
      if (compareHlc(t, prev) !== 1 || t.logical > MAX_LOGICAL) throw new Error(`not increasing at ${i}`);
      prev = t;
    }
    expect(prev.wall).toBe(BASE + 3);
    expect(decodeHlc(encodeHlc(prev))).toEqual(prev);
  });

  it('rejects a remote timestamp more than maxForwardSkewMs ahead with clock_skew, leaving the clock as it was', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1000, max: 3_600_000 }),
        fc.integer({ min: 1, max: 10 * 3_600_000 }),
        fc.integer({ min: 0, max: MAX_LOGICAL }),
        (maxForwardSkewMs, excess, logical) => {
          const clock = new HybridClock({ physicalNow: () => BASE, maxForwardSkewMs });
          const before = clock.now();
          let error: unknown;
          try {
            clock.receive({ wall: BASE + maxForwardSkewMs + excess, logical });
          } catch (err) {
            error = err;
          }
          expect(error).toBeInstanceOf(ProtocolError);
          expect((error as ProtocolError).code).toBe('clock_skew');
          expect(clock.current).toEqual(before);
          // Exactly at the limit is still accepted.
          const atLimit = { wall: BASE + maxForwardSkewMs, logical };
          expect(compareHlc(clock.receive(atLimit), atLimit)).toBe(1);
        },
      ),
      fcParams(),
    );
  });

  it('starts after the timestamp it was given, so a restart never goes back', () => {
    const initial = { wall: BASE + 60_000, logical: 5 };
    const clock = new HybridClock({ physicalNow: () => BASE, initial });
    expect(clock.now()).toEqual({ wall: BASE + 60_000, logical: 6 });
  });
});
