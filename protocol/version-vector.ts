import type { VersionVector } from './messages.js';

export type Ordering = 'before' | 'after' | 'equal' | 'concurrent';

export const EMPTY_VV: VersionVector = Object.freeze({});

/**
 * `branch`'s counter in `vv`, 0 when absent. Own properties only: `constructor` is a valid
 * branch id, and `vv.constructor` on a plain object is Object's constructor function.
 */
function counter(vv: VersionVector, branch: string): number {
  return Object.hasOwn(vv, branch) ? (vv[branch] ?? 0) : 0;
}

/** `vv` with `branch`'s counter one higher. */
export function increment(vv: VersionVector, branch: string): VersionVector {
  return { ...vv, [branch]: counter(vv, branch) + 1 };
}

/** Pointwise maximum: the smallest vector that dominates or equals both. */
export function merge(a: VersionVector, b: VersionVector): VersionVector {
  const out: Record<string, number> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    if (v > counter(out, k)) out[k] = v;
  }
  return out;
}

/**
 * How `a` relates to `b`: `before` when b has seen everything a has and more, `after` the
 * reverse, `equal`, or `concurrent` when each has seen a write the other has not.
 * Missing entries count as zero, so sparse and explicit-zero vectors compare equal.
 */
export function compare(a: VersionVector, b: VersionVector): Ordering {
  let aAhead = false;
  let bAhead = false;
  for (const [k, av] of Object.entries(a)) {
    const bv = counter(b, k);
    if (av > bv) aAhead = true;
    else if (av < bv) bAhead = true;
  }
  for (const [k, bv] of Object.entries(b)) {
    if (!Object.hasOwn(a, k) && bv > 0) bAhead = true;
  }
  if (aAhead && bAhead) return 'concurrent';
  if (aAhead) return 'after';
  if (bAhead) return 'before';
  return 'equal';
}

/** Same entries in key order, zeros dropped: a canonical form for storage and comparison. */
export function normalize(vv: VersionVector): VersionVector {
  const out: Record<string, number> = {};
  for (const k of Object.keys(vv).sort()) {
    const v = vv[k];
    if (v !== undefined && v > 0) out[k] = v;
  }
  return out;
}
