/**
 * What one connection pushes to its branch, and when (docs/architecture.md, "Connections and
 * delivery"). Modes: `live` (push notified entries that continue `scanned`), `catching-up` (page
 * through the log, holding the notifications that arrive meanwhile), `paused` (send buffer or
 * unapplied entries over the threshold: push nothing, resume from the log once drained),
 * `snapshot` (bootstrapping: push nothing). Memory per connection is bounded: while catching up,
 * at most HELD_ENTRIES entries of notifications are held (shared with the other receivers), so
 * that catching up can hand over to them; otherwise the log is re-read.
 */
import type { LogEntry } from '../protocol/index.js';
import type { EntriesMessage } from './engine/types.js';
import type { Page } from './log.js';
import { receives } from './routing.js';

/**
 * Most entries of notifications a connection holds while catching up. Without them, catching up
 * under a steady stream of appends never ended: each page read saw a notification arrive
 * meanwhile, and read again, each receiver on its own, paying for the log read and its own
 * encoding, which at full load is slower than the stream, so it never caught up.
 */
export const HELD_ENTRIES = 5000;

/**
 * What a notification holds for this branch, with routes (hub/routes/entries.ts): its entries
 * (the notification's own array when it gets all of them), none, or null when the notification
 * came without entries and the branch is a receiver (the log must be read). Undefined: no routes.
 */
export type Routed = readonly LogEntry[] | null | undefined;

/** Only notifications whose entries for this branch are known are held. */
type Held = { readonly msg: EntriesMessage; readonly shared: SharedDeliver | null; readonly routed: Routed };

export type DeliveryMode = 'starting' | 'live' | 'catching-up' | 'paused' | 'snapshot' | 'closed';

export interface DeliveryLimits {
  /** Stop pushing above this many bytes buffered on the socket. */
  readonly pauseBytes: number;
  /** Close the socket (4008) above this many. */
  readonly closeBytes: number;
  /** Stop pushing with this many delivered entries not yet applied. */
  readonly maxUnapplied: number;
  /** How long to wait before re-reading the log after a database error. */
  readonly retryMs: number;
}

/** The entries of one notification, shared by every receiver so the frame is encoded once per codec. */
export interface SharedDeliver {
  readonly entries: readonly LogEntry[];
  /** Encoded `sync.deliver` frames by codec name, filled in by the first receiver of each codec. */
  readonly encoded: Map<string, string | Buffer>;
}

/** What delivery needs from its connection: I/O only. */
export interface DeliveryPort {
  readonly branchId: string;
  /** Bytes queued on the socket, not yet written. */
  buffered(): number;
  /** Sends entries (or a shared notification's entries, all of them) as one `sync.deliver`. */
  deliver(entries: readonly LogEntry[], shared: SharedDeliver | null, appendedAt: readonly number[] | number): void;
  /** The branch fell behind retention: tell it to bootstrap. */
  snapshotRequired(reason: string): void;
  readPage(from: number): Promise<Page>;
  /** Persists the cursor (coalesced by the caller); `lazy`: nothing was delivered, it may wait. */
  moveCursor(pos: number, lazy?: boolean): void;
  /** Closes the socket with 4008. */
  closeSlow(): void;
  paused(): void;
  error(err: unknown): void;
}

export class Delivery {
  mode: DeliveryMode = 'starting';
  /** Highest log offset already considered for this branch. */
  scanned = 0;
  /** Highest offset the branch said it applied. */
  applied = 0;
  /** Highest offset delivered. */
  deliveredUpto = 0;
  private more = false;
  /** Notifications that came while catching up, while they fit in HELD_ENTRIES. */
  private held: Held[] = [];
  private heldEntries = 0;
  /** Pages delivered and not yet applied: [last offset, entry count]. */
  private readonly unappliedPages: [number, number][] = [];
  private unapplied = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly port: DeliveryPort,
    private readonly limits: DeliveryLimits,
  ) {}

  get unappliedEntries(): number {
    return this.unapplied;
  }

  /**
   * After hello: from the branch's cursor, or waiting for a snapshot request when it must
   * bootstrap. `head` was read with the cursor: a branch already there goes live without reading
   * the log, unless a notification came in meanwhile (the connection is registered before the
   * cursor is read, so anything committed after that read is notified).
   */
  start(cursor: number, bootstrap: boolean, head = Number.MAX_SAFE_INTEGER): void {
    this.scanned = cursor;
    this.applied = cursor;
    this.deliveredUpto = cursor;
    if (bootstrap) {
      this.mode = 'snapshot';
      return;
    }
    if (cursor >= head && !this.more) {
      this.mode = 'live';
      return;
    }
    this.mode = 'catching-up';
    void this.catchUp();
  }

  stop(): void {
    this.mode = 'closed';
    this.dropHeld();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** A notification of new entries in the tenant log; `routed`: what of it is for this branch. */
  onEntries(msg: EntriesMessage, shared: SharedDeliver | null, routed?: Routed): void {
    if (msg.last <= this.scanned) return;
    const known = routed === undefined ? msg.entries : routed;
    if (this.mode !== 'live') {
      if (this.mode === 'catching-up' && known && this.heldEntries + known.length <= HELD_ENTRIES) {
        this.held.push({ msg, shared, routed });
        this.heldEntries += known.length;
      } else {
        this.dropHeld();
        this.more = true;
      }
      return;
    }
    if (msg.first > this.scanned + 1 || !known) {
      this.switchToCatchUp();
      return;
    }
    const mine = routed === undefined ? (receives(this.port.branchId, msg.origin, msg.target) ? known : []) : known;
    if (mine.length === 0) {
      this.scanned = msg.last;
      this.settleCursor(true);
      return;
    }
    if (this.overSendLimits()) return;
    const whole = mine === msg.entries && msg.first > this.scanned;
    const entries = whole ? mine : mine.filter((e) => e[0] > this.scanned);
    this.push(entries, whole ? shared : null, msg.at);
    this.scanned = msg.last;
  }

  /** A log head whose notifications had time to arrive (the poll before last's): a missed one shows up here. */
  onHead(head: number): void {
    if (head > this.scanned && this.mode === 'live') this.switchToCatchUp();
  }

  /** `sync.applied {offset}`. */
  onApplied(offset: number): void {
    const upto = Math.min(offset, this.scanned);
    if (upto > this.applied) this.applied = upto;
    while (this.unappliedPages.length > 0 && (this.unappliedPages[0] as [number, number])[0] <= this.applied) {
      this.unapplied -= (this.unappliedPages.shift() as [number, number])[1];
    }
    this.settleCursor();
    if (this.mode === 'paused') this.maybeResume();
  }

  /** A snapshot started: push nothing until it ends. */
  beginSnapshot(): void {
    if (this.mode === 'closed') return;
    this.mode = 'snapshot';
    this.dropHeld();
  }

  /** The branch applied a snapshot up to `offset`: continue from the log after it. */
  endSnapshot(offset: number): void {
    if (this.mode === 'closed') return;
    this.scanned = offset;
    this.applied = offset;
    this.deliveredUpto = offset;
    this.unappliedPages.length = 0;
    this.unapplied = 0;
    this.port.moveCursor(offset);
    this.switchToCatchUp();
  }

  /** A snapshot was abandoned (error, timeout): go back to where the branch was. */
  abortSnapshot(): void {
    if (this.mode !== 'snapshot') return;
    this.switchToCatchUp();
  }

  private switchToCatchUp(): void {
    if (this.mode === 'catching-up') {
      this.more = true;
      return;
    }
    this.mode = 'catching-up';
    void this.catchUp();
  }

  private async catchUp(): Promise<void> {
    try {
      for (;;) {
        if (this.mode !== 'catching-up') return;
        if (this.overSendLimits()) return;
        this.more = false;
        const page = await this.port.readPage(this.scanned);
        if (this.mode !== 'catching-up') return;
        if (page.kind === 'behind') {
          this.mode = 'snapshot';
          this.dropHeld();
          this.port.snapshotRequired(`cursor ${this.scanned} is below the oldest retained offset ${page.prunedUpto}`);
          return;
        }
        const rows = page.rows.filter((r) => r.pos > this.scanned);
        if (rows.length > 0) {
          this.push(
            rows.map((r) => [r.pos, r.change] as LogEntry),
            null,
            rows.map((r) => r.at),
          );
        }
        if (page.scanned > this.scanned) this.scanned = page.scanned;
        this.settleCursor();
        if (this.more) continue;
        if (this.handOver(page.atHead)) return;
      }
    } catch (err) {
      if (this.mode !== 'catching-up') return;
      this.port.error(err);
      // The database may be back in a moment; stay in catching-up and try again.
      this.timer = setTimeout(() => {
        this.timer = undefined;
        if (this.mode !== 'catching-up') return;
        this.mode = 'starting';
        this.switchToCatchUp();
      }, this.limits.retryMs);
      this.timer.unref();
    }
  }

  /**
   * After a page: live again when the page reached the head and nothing came meanwhile, or when
   * the notifications held since catching up began continue where the page ended (they are then
   * delivered as live ones, with their shared encoding). Otherwise the next page is read; the
   * held notifications it covers are dropped.
   */
  private handOver(atHead: boolean): boolean {
    const fresh = this.held.filter((h) => h.msg.last > this.scanned).sort((a, b) => a.msg.first - b.msg.first);
    this.held = fresh;
    this.heldEntries = fresh.reduce((n, h) => n + ((h.routed === undefined ? h.msg.entries : h.routed)?.length ?? 0), 0);
    if (fresh.length === 0) {
      if (!atHead) return false;
      this.mode = 'live';
      return true;
    }
    let next = this.scanned + 1;
    for (const h of fresh) {
      if (h.msg.first > next) return false;
      next = Math.max(next, h.msg.last + 1);
    }
    this.dropHeld();
    this.mode = 'live';
    for (const h of fresh) this.onEntries(h.msg, h.shared, h.routed);
    return true;
  }

  private dropHeld(): void {
    this.held = [];
    this.heldEntries = 0;
  }

  private push(entries: readonly LogEntry[], shared: SharedDeliver | null, at: readonly number[] | number): void {
    if (entries.length === 0) return;
    this.port.deliver(entries, shared, at);
    const last = (entries[entries.length - 1] as LogEntry)[0];
    this.deliveredUpto = Math.max(this.deliveredUpto, last);
    this.unappliedPages.push([last, entries.length]);
    this.unapplied += entries.length;
    if (this.port.buffered() > this.limits.closeBytes) this.closeSlow();
  }

  /** When nothing delivered is unapplied, the cursor moves to `scanned` (the branch's own entries count as seen). */
  private settleCursor(lazy = false): void {
    this.port.moveCursor(this.unapplied === 0 ? this.scanned : this.applied, lazy);
  }

  /** Pauses (and returns true) when the socket or the branch cannot take more right now. */
  private overSendLimits(): boolean {
    const buffered = this.port.buffered();
    if (buffered > this.limits.closeBytes) {
      this.closeSlow();
      return true;
    }
    if (buffered <= this.limits.pauseBytes && this.unapplied < this.limits.maxUnapplied) return false;
    this.mode = 'paused';
    this.more = true;
    this.dropHeld();
    this.port.paused();
    this.scheduleResumeCheck();
    return true;
  }

  private closeSlow(): void {
    if (this.mode === 'closed') return;
    this.stop();
    this.port.closeSlow();
  }

  private maybeResume(): void {
    if (this.mode !== 'paused') return;
    // Hysteresis: resume well below the thresholds, so a paused socket does not flap.
    if (this.port.buffered() <= this.limits.pauseBytes / 2 && this.unapplied <= this.limits.maxUnapplied / 2) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      this.mode = 'starting';
      this.switchToCatchUp();
      return;
    }
    this.scheduleResumeCheck();
  }

  private scheduleResumeCheck(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.maybeResume();
    }, 50);
    this.timer.unref();
  }
}
