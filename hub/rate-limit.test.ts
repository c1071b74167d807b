import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fcParams } from '../protocol/testing/fc.js';
import { refill, takeAll, type BucketState } from './rate-limit.js';

const rate = { perSecond: 10, burst: 5 };

describe('token buckets', () => {
  it('allows a burst, then one token per 1/rate seconds', () => {
    let states: (BucketState | undefined)[] = [undefined];
    const allowed: boolean[] = [];
    for (let i = 0; i < 7; i++) {
      const r = takeAll(states, [rate], 1000);
      states = r.states;
      allowed.push(r.result.allowed);
    }
    expect(allowed).toEqual([true, true, true, true, true, false, false]);
    const later = takeAll(states, [rate], 1100);
    expect(later.result.allowed).toBe(true);
  });

  it('takes from every bucket or from none', () => {
    const full = { tokens: 5, at: 0 };
    const empty = { tokens: 0, at: 0 };
    const r = takeAll([full, empty], [rate, rate], 0);
    expect(r.result).toEqual({ allowed: false, refusedBy: 1, retryAfterMs: 100 });
    expect(r.states[0]?.tokens).toBe(5);
  });

  it('never holds more than the burst nor less than zero, whatever the timing', () => {
    fc.assert(
      fc.property(fc.array(fc.nat({ max: 2000 }), { maxLength: 50 }), (gaps) => {
        let state: BucketState | undefined;
        let now = 0;
        for (const gap of gaps) {
          now += gap;
          const r = takeAll([state], [rate], now);
          state = r.states[0];
          expect(state?.tokens).toBeGreaterThanOrEqual(0);
          expect(state?.tokens).toBeLessThanOrEqual(rate.burst);
        }
      }),
      fcParams({ numRuns: 300 }),
    );
  });

  it('does not go back in time when the clock does', () => {
    expect(refill({ tokens: 1, at: 1000 }, 500, rate)).toEqual({ tokens: 1, at: 1000 });
  });
});
