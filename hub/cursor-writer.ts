/**
 * Writes one connection's cursor, coalesced: at most one write in flight and one per interval,
 * always the latest value, and at once when the connection closes. Every write is a commit (a
 * WAL flush): a receiver acknowledging each delivery would otherwise cost one per delivery. A
 * cursor a moment behind only means entries delivered again after a hub crash, which the agent
 * skips. A failed write is tried again at the next move (or at close), not on a timer: during a
 * database outage thousands of connections would otherwise retry, and log, every interval.
 *
 * A lazy move (the branch was sent nothing: with routes, most stores for most changes) waits
 * longer: 300 stores moving past every notification wrote 3,000 cursors a second, and the hub's
 * CPU per change grew with the tenant's size. Such a cursor only bounds retention and where a
 * reconnect starts reading, and reading a few seconds of log again costs little.
 */
export interface CursorStore {
  write(pos: number): Promise<void>;
  failed(err: unknown): void;
}

export class CursorWriter {
  private written: number;
  private wanted: number;
  private inFlight: Promise<void> | undefined;
  private writtenAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerDue = 0;
  /** A move that was not lazy came while a write was in flight. */
  private urgent = false;
  private stopped = false;

  constructor(
    private readonly store: CursorStore,
    private readonly intervalMs: number,
    start = 0,
    private readonly lazyIntervalMs = intervalMs,
  ) {
    this.written = start;
    this.wanted = start;
  }

  /** The cursor as read at connect: writes below it are pointless. */
  reset(pos: number): void {
    this.written = pos;
    if (this.wanted < pos) this.wanted = pos;
  }

  /** Never moves the cursor back. `lazy`: nothing was delivered, the write may wait longer. */
  move(pos: number, lazy = false): void {
    if (pos <= this.wanted) return;
    this.wanted = pos;
    if (this.inFlight && !lazy) this.urgent = true;
    if (this.inFlight || this.stopped) return;
    const due = this.writtenAt + (lazy ? this.lazyIntervalMs : this.intervalMs);
    if (this.timer) {
      if (due >= this.timerDue) return;
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const wait = due - Date.now();
    if (wait <= 0) {
      void this.write();
      return;
    }
    this.timerDue = due;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.write();
    }, wait);
    this.timer.unref();
  }

  /** Stops timed writes and writes the latest cursor now (after any write in flight). */
  async flush(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.inFlight;
    await this.write();
  }

  private write(): Promise<void> {
    if (this.inFlight || this.wanted <= this.written) return this.inFlight ?? Promise.resolve();
    const pos = this.wanted;
    this.inFlight = this.store.write(pos).then(
      () => {
        this.inFlight = undefined;
        this.written = pos;
        this.writtenAt = Date.now();
        // Moved on meanwhile: written after the interval (the lazy one if every move was lazy).
        const lazy = !this.urgent;
        this.urgent = false;
        if (this.wanted > pos && !this.stopped) {
          const latest = this.wanted;
          this.wanted = pos;
          this.move(latest, lazy);
        }
      },
      (err: unknown) => {
        this.inFlight = undefined;
        this.writtenAt = Date.now();
        this.store.failed(err);
      },
    );
    return this.inFlight;
  }
}
