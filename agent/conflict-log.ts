/**
 * Logs the conflicts this branch's writes lost (`conflict.notify`): each at debug, and at info
 * one summary line per interval with the count per table. Two branches writing the same hot rows
 * lose a conflict on nearly every change; a line each at info wrote 6 MB a minute.
 */
import type { Logger } from 'pino';
import type { ConflictNotify } from '../protocol/messages.js';

export class ConflictLog {
  private counts = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: Logger,
    private readonly intervalMs = 60_000,
  ) {}

  lost(n: ConflictNotify): void {
    const c = n.conflict;
    this.log.debug(
      { reportedBy: n.reported_by, table: c.table, pk: c.pk, kind: c.kind ?? 'concurrent', winner: c.winner.origin, loser: c.loser.origin },
      'a write of this branch lost a conflict',
    );
    this.counts.set(c.table, (this.counts.get(c.table) ?? 0) + 1);
    if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), this.intervalMs);
      this.timer.unref();
    }
  }

  /** Logs the summary of what was counted since the last one, if anything. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.counts.size === 0) return;
    const tables = Object.fromEntries(this.counts);
    const total = [...this.counts.values()].reduce((a, b) => a + b, 0);
    this.counts = new Map();
    this.log.info({ lost: total, tables, seconds: this.intervalMs / 1000 }, `${total} writes of this branch lost a conflict (details at debug level)`);
  }
}
