/** Capped exponential backoff for retries after failures. */
export interface BackoffPolicy {
  readonly baseMs: number;
  readonly capMs: number;
}

/** Delay before retry number `failures` (1 = first retry): base × 2^(failures−1), at most cap. */
export function backoffDelay(policy: BackoffPolicy, failures: number): number {
  if (failures <= 0) return 0;
  // 2^31 overflows nothing in a double, but stop doubling once past the cap anyway.
  const exp = Math.min(failures - 1, 40);
  return Math.min(policy.capMs, policy.baseMs * 2 ** exp);
}

/** Spreads retries of many keys that failed together: a delay in [d/2, d]. */
export function withJitter(delayMs: number, random: () => number = Math.random): number {
  return delayMs / 2 + random() * (delayMs / 2);
}
