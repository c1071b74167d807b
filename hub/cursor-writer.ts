/**
 * Writes one connection's cursor, coalesced: at most one write in flight and one per interval,
 * always the latest value, and at once when the connection closes. Every write is a commit (a
 * WAL flush): a receiver acknowledging each delivery would otherwise cost one per delivery. A
 * cursor a moment behind only means entries delivered again after a hub crash, which the agent
 * skips. A failed write is tried again at the next move (or at close), not on a timer: during a
 * database outage thousands of connections would otherwise retry, and log, every interval.
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
  private stopped = false;

  constructor(
    private readonly store: CursorStore,
    private readonly intervalMs: number,
    start = 0,
  ) {
    this.written = start;
    this.wanted = start;
  }

  /** The cursor as read at connect: writes below it are pointless. */
  reset(pos: number): void {
    this.written = pos;
    if (this.wanted < pos) this.wanted = pos;
  }

  /** Never moves the cursor back. */
  move(pos: number): void {
    if (pos <= this.wanted) return;
    this.wanted = pos;
    if (this.inFlight || this.timer || this.stopped) return;
    const wait = this.writtenAt + this.intervalMs - Date.now();
    if (wait <= 0) {
      void this.write();
      return;
    }
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
        // Moved on meanwhile: written after the interval.
        if (this.wanted > pos && !this.stopped) {
          const latest = this.wanted;
          this.wanted = pos;
          this.move(latest);
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
