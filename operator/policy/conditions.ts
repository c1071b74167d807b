/** Status conditions and status comparison: pure, so "write status only when it changes" is testable. */
import type { Condition, ConditionStatus } from '../api/v1alpha1.js';

export interface ConditionInput {
  readonly status: ConditionStatus;
  readonly reason: string;
  readonly message: string;
}

/**
 * The conditions list with `type` set to `next`. lastTransitionTime moves only when the
 * status flips (Kubernetes API conventions), so a changed message alone is not a transition.
 */
export function setCondition(
  current: readonly Condition[] | undefined,
  type: string,
  next: ConditionInput,
  generation: number | undefined,
  now: Date,
): Condition[] {
  const list = current ?? [];
  const prev = list.find((c) => c.type === type);
  const condition: Condition = {
    type,
    status: next.status,
    reason: next.reason,
    message: truncate(next.message, 32_768),
    lastTransitionTime: prev && prev.status === next.status ? prev.lastTransitionTime : rfc3339(now),
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
  };
  return [...list.filter((c) => c.type !== type), condition].sort((a, b) => a.type.localeCompare(b.type));
}

export function findCondition(list: readonly Condition[] | undefined, type: string): Condition | undefined {
  return list?.find((c) => c.type === type);
}

/** Seconds precision, as the API server stores metav1.Time. */
export function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function truncate(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

/** Deep equality of JSON values; absent and `undefined` members are the same. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => jsonEqual(x, b[i]));
  }
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  const keys = new Set([...Object.keys(ra), ...Object.keys(rb)]);
  for (const k of keys) if (!jsonEqual(ra[k], rb[k])) return false;
  return true;
}
