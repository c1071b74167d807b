/**
 * Route repair (docs/sync-semantics.md "Routing"): the hub routes each change by its own row,
 * so when a row moves between subsets while another branch edits it concurrently, a branch can
 * end with a version that lost (store 18 keeps the moved row although the edit at store 17 won)
 * or without the row it should hold. Once the log is folded into the compacted state, the winner
 * of each row is known: this replays what every branch received of the row in a stretch of the
 * log, as its agent applies it, and names the branches whose copy is not the one they should
 * hold, with what to send each (the winner again, or an eviction). Pure.
 */
import { beats, resolve, type Strategy, type Version } from '../../protocol/conflict.js';
import type { Change } from '../../protocol/index.js';
import { normalize } from '../../protocol/version-vector.js';
import { evictionOf } from './entries.js';
import type { RoutingPolicy } from './policy.js';

export interface Repair {
  readonly branch: string;
  /** The winner itself (the branch lacks it), or its eviction (the branch must not hold the row). */
  readonly change: Change;
}

/** The version of a row a branch holds, as far as the hub can tell: enough to resolve with. */
export type Copy = Pick<Change, 'origin' | 'seq' | 'hlc' | 'vv' | 'op'>;

const versionOf = (c: Copy): Version => ({ vv: normalize(c.vv), hlc: c.hlc, origin: c.origin, deleted: c.op === 'delete' });
const same = (a: Copy, b: Copy): boolean => a.origin === b.origin && a.seq === b.seq;
const copyOf = (c: Copy): Copy => ({ origin: c.origin, seq: c.seq, hlc: c.hlc, vv: c.vv, op: c.op });

/** The version a replica holding `held` keeps after applying `c` (agent/apply/plan.ts). */
function applied(held: Copy | null, c: Copy, st: Strategy): Copy | null {
  if (held === null) return c;
  const d = resolve(versionOf(held), versionOf(c), st);
  if (d.action === 'apply') return c;
  if (d.action === 'conflict') return d.winner === 'incoming' ? c : held;
  return held;
}

/** What an eviction for `c` leaves of `held`: nothing, unless `held` beats `c` (a stale eviction). */
function evicted(held: Copy | null, c: Copy, st: Strategy): Copy | null {
  if (held === null) return null;
  const d = resolve(versionOf(held), versionOf(c), st);
  const stale = (d.action === 'skip' && d.reason === 'stale') || (d.action === 'conflict' && d.winner === 'local');
  return stale ? held : null;
}

/** The winner among the versions the compacted state keeps of a row (its maximal versions). */
export function winnerOf(versions: readonly Change[], st: Strategy): Change | null {
  let w: Change | null = null;
  for (const v of versions) if (w === null || beats(versionOf(v), versionOf(w), st)) w = v;
  return w;
}

/**
 * What each branch holds of a row when a stretch of the log begins, as far as the hub can tell
 * without remembering it: the previous pass left every branch it reached with the winner if its
 * routes select it and nothing otherwise, so a branch holds the best of the row's versions from
 * before the stretch (those of the compacted state that no change of the stretch replaced) that
 * it keeps. A version replaced by a change of the stretch was seen by that change's writer, so
 * that change's own `old` values route it right.
 */
export function heldBefore(policy: RoutingPolicy, versions: readonly Change[], stretch: readonly Change[], st: Strategy): Map<string, Copy> {
  const inStretch = new Set(stretch.map((c) => `${c.origin}/${c.seq}`));
  const earlier = versions.filter((v) => !inStretch.has(`${v.origin}/${v.seq}`));
  const out = new Map<string, Copy>();
  // A branch keeps a version only if it would receive it, or wrote it: the version's receivers
  // and its origin are every candidate (not the whole tenant).
  const candidates = new Set<string>();
  for (const v of earlier) {
    candidates.add(v.origin);
    for (const b of policy.receivers(v).keys()) candidates.add(b);
  }
  for (const b of candidates) {
    const w = winnerOf(earlier.filter((v) => policy.keeps(b, v)), st);
    if (w) out.set(b, copyOf(w));
  }
  return out;
}

/**
 * The repairs for one row: `changes` are the row's broadcast changes in a stretch of the log, in
 * log order; `before` what each branch held of the row when the stretch began, as the previous
 * pass left it (a branch not in it held nothing the hub knows of); `winner` the row's winning
 * version now. Returns the repairs and what each branch holds after them, for the next pass
 * (null: nothing). A branch neither in `before` nor reached in the stretch is left alone.
 */
/**
 * Whether a row's stretch cannot need repair: one insert that is the row's only version, a new
 * row routed by its own values to exactly the branches that keep it (most rows of insert-only
 * tables such as sales: the replay is skipped for them).
 */
export function plainInsert(changes: readonly Change[], versions: readonly Change[]): boolean {
  const c = changes[0];
  const v = versions[0];
  return changes.length === 1 && versions.length === 1 && c !== undefined && v !== undefined && c.op === 'insert' && c.origin === v.origin && c.seq === v.seq;
}

export function repairsFor(
  policy: RoutingPolicy,
  changes: readonly Change[],
  winner: Change,
  st: Strategy,
  before: ReadonlyMap<string, Copy> = new Map(),
): { repairs: Repair[]; held: Map<string, Copy | null> } {
  const held = new Map<string, Copy | null>(before);
  for (const c of changes) {
    // The writer's own write: what it held then is in the write's version vector, so the write
    // wins over it; a version it held that the write did not see arrived after the write and is
    // resolved against it. Its own routing may then evict its copy (decide: 'evict'), which a
    // copy that beats the write survives.
    const own = applied(held.get(c.origin) ?? null, c, st);
    held.set(c.origin, policy.decide(c.origin, c) === 'evict' ? evicted(own, c, st) : own);
    for (const [b, d] of policy.receivers(c)) {
      if (b === c.origin) continue;
      const was = held.get(b) ?? null;
      held.set(b, d === 'deliver' ? applied(was, c, st) : evicted(was, c, st));
    }
  }
  const repairs: Repair[] = [];
  for (const [b, copy] of held) {
    const should = policy.keeps(b, winner);
    if (should && (copy === null || !same(copy, winner)) && b !== winner.origin) {
      repairs.push({ branch: b, change: winner });
      held.set(b, copyOf(winner));
    } else if (!should && copy !== null) {
      repairs.push({ branch: b, change: evictionOf(winner) });
      held.set(b, null);
    } else if (copy !== null) {
      held.set(b, copyOf(copy));
    }
  }
  repairs.sort((x, y) => (x.branch < y.branch ? -1 : x.branch > y.branch ? 1 : 0));
  return { repairs, held };
}
