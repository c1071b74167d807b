import { describe, expect, it } from 'vitest';
import { backoffDelay, withJitter } from './backoff.js';

describe('backoffDelay', () => {
  const policy = { baseMs: 500, capMs: 60_000 };
  it.each([
    [0, 0],
    [1, 500],
    [2, 1_000],
    [3, 2_000],
    [7, 32_000],
    [8, 60_000],
    [1_000, 60_000],
  ])('after %i failures waits %i ms', (failures, ms) => {
    expect(backoffDelay(policy, failures)).toBe(ms);
  });

  it('jitter stays within [d/2, d]', () => {
    expect(withJitter(1_000, () => 0)).toBe(500);
    expect(withJitter(1_000, () => 0.999_999)).toBeCloseTo(1_000, 2);
  });
});
