/**
 * Bounds on what a branch's conflict reports may cost the hub (docs/api.md "Conflicts"): row
 * contents cut to a size, and a per-tenant budget of audit entries, since the audit log is shared
 * by every tenant. Pure.
 */
import type { Conflict, Row } from '../protocol/index.js';

/** Most JSON bytes the two rows of a stored or forwarded conflict keep. */
export const MAX_CONFLICT_ROWS_BYTES = 16 * 1024;
/** A value longer than this (in characters) is cut when the rows are over the limit. */
const MAX_VALUE_CHARS = 256;

const sizeOf = (v: unknown): number => Buffer.byteLength(JSON.stringify(v), 'utf8');

function cutValues(row: Row): Row {
  const out: Row = {};
  for (const [k, v] of Object.entries(row)) {
    const text = typeof v === 'string' ? v : JSON.stringify(v);
    out[k] = text.length > MAX_VALUE_CHARS ? `${text.slice(0, MAX_VALUE_CHARS)}… [${sizeOf(v)} bytes, cut by the hub]` : v;
  }
  return out;
}

function keyOnly(row: Row, pk: Row): Row {
  return Object.fromEntries(Object.keys(pk).filter((k) => Object.hasOwn(row, k)).map((k) => [k, row[k] ?? null]));
}

/**
 * The conflict as the hub keeps and forwards it: as reported when its rows fit
 * `MAX_CONFLICT_ROWS_BYTES`, else with long values cut, else with the rows' key columns only.
 * `cut` says whether anything was taken out.
 */
export function trimConflict(c: Conflict, max = MAX_CONFLICT_ROWS_BYTES): { conflict: Conflict; cut: boolean } {
  if (sizeOf([c.winner_row, c.loser_row]) <= max) return { conflict: c, cut: false };
  const cut = { ...c, winner_row: c.winner_row && cutValues(c.winner_row), loser_row: c.loser_row && cutValues(c.loser_row) };
  if (sizeOf([cut.winner_row, cut.loser_row]) <= max) return { conflict: cut, cut: true };
  return { conflict: { ...c, winner_row: c.winner_row && keyOnly(c.winner_row, c.pk), loser_row: c.loser_row && keyOnly(c.loser_row, c.pk) }, cut: true };
}

/**
 * Audit entries of conflicts allowed per tenant: a token bucket per tenant on this instance
 * (`perSecond`, up to `burst`). A tenant whose branches report faster than that is still counted
 * and forwarded, only not written to the shared audit log.
 */
export class AuditBudget {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly perSecond = 20,
    private readonly burst = 200,
    private readonly now: () => number = Date.now,
  ) {}

  take(tenant: string): boolean {
    const t = this.now();
    const b = this.buckets.get(tenant) ?? { tokens: this.burst, at: t };
    b.tokens = Math.min(this.burst, b.tokens + ((t - b.at) / 1000) * this.perSecond);
    b.at = t;
    this.buckets.set(tenant, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}
