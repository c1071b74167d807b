import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffDelay, closeAction, deadAfter, LONG, RECONNECT, reconnectDelay, refreshDelay, RESTART, RESTART_WINDOW_MS } from './backoff.js';

describe('backoffDelay', () => {
  it('stays within [0, min(cap, base·2^attempt)) for every attempt and random draw', () => {
    fc.assert(
      fc.property(fc.nat(100), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (attempt, r) => {
        const d = backoffDelay(attempt, RECONNECT, () => r);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThan(Math.max(1, Math.min(RECONNECT.capMs, RECONNECT.baseMs * 2 ** attempt)));
      }),
    );
  });

  it('grows exponentially until the cap', () => {
    const top = (attempt: number) => backoffDelay(attempt, { baseMs: 100, capMs: 5000 }, () => 0.999999);
    expect([0, 1, 2, 3, 4, 5, 6, 10].map(top)).toEqual([99, 199, 399, 799, 1599, 3199, 4999, 4999]);
  });

  it('uses full jitter: the lowest draw waits nothing, so restarts do not synchronise agents', () => {
    expect(backoffDelay(8, RECONNECT, () => 0)).toBe(0);
    const draws = Array.from({ length: 2000 }, () => backoffDelay(20, RECONNECT));
    const mean = draws.reduce((a, b) => a + b, 0) / draws.length;
    expect(mean).toBeGreaterThan(RECONNECT.capMs * 0.4);
    expect(mean).toBeLessThan(RECONNECT.capMs * 0.6);
  });
});

describe('closeAction', () => {
  it.each([
    [1001, 'reconnect-now', false],
    [1012, 'reconnect-now', false],
    [4001, 'reconnect-now', true],
    [4008, 'reconnect', false],
    [1009, 'reconnect', false],
    [1006, 'reconnect', false],
    [4003, 'reconnect-later', true],
    [4009, 'reconnect-later', false],
    [4029, 'reconnect-later', false],
  ])('close %i → %s (new token: %s)', (code, kind, newToken) => {
    expect(closeAction(code)).toMatchObject({ kind, newToken });
  });

  it('retries every few seconds while a restarting hub is away, and backs off as usual once that took over a minute', () => {
    const refused = { kind: 'reconnect', reason: 'ECONNREFUSED' } as const;
    for (let failures = 1; failures < 20; failures++) {
      expect(reconnectDelay(refused, failures, () => 0.999, 10_000)).toBeLessThan(RESTART.capMs);
    }
    expect(reconnectDelay(refused, 8, () => 0.999, RESTART_WINDOW_MS + 1)).toBeGreaterThan(RESTART.capMs * 10);
    expect(reconnectDelay(refused, 8, () => 0.999)).toBeGreaterThan(RESTART.capMs * 10);
    // A suspension during the window still backs off long.
    expect(reconnectDelay(closeAction(4003), 8, () => 0.999, 1000)).toBeGreaterThan(LONG.baseMs);
    expect(closeAction(1012)).toMatchObject({ restart: true });
    expect(closeAction(4001)).not.toHaveProperty('restart');
  });

  it('reconnects at once within a second after a hub restart, and backs off long after a suspension', () => {
    expect(reconnectDelay(closeAction(1012), 9, () => 0.999)).toBeLessThan(1000);
    expect(reconnectDelay(closeAction(4003), 30, () => 0.999)).toBeGreaterThan(LONG.capMs * 0.99);
  });
});

describe('refreshDelay', () => {
  it('refreshes a 15-minute token a minute or more before it expires', () => {
    const now = 1_000_000;
    const d = refreshDelay(now + 15 * 60_000, now);
    expect(d).toBeGreaterThan(10 * 60_000);
    expect(d).toBeLessThanOrEqual(14 * 60_000);
  });

  it('is never negative and always before expiry', () => {
    fc.assert(
      fc.property(fc.integer({ min: -1e7, max: 1e8 }), (left) => {
        const d = refreshDelay(1e9 + left, 1e9);
        expect(d).toBeGreaterThanOrEqual(0);
        if (left > 0) expect(d).toBeLessThan(left);
      }),
    );
  });
});

describe('deadAfter', () => {
  it('allows more than two missed heartbeats, and at least ten seconds', () => {
    expect(deadAfter(30_000)).toBe(75_000);
    expect(deadAfter(1000)).toBe(10_000);
  });
});
