/**
 * `hubsync.wake.waiting`: set while the agent has nothing to send, so capture triggers NOTIFY
 * only then. A notifying commit takes a server-wide lock (held through its WAL flush), so a
 * NOTIFY on every write would serialise all writers; with the flag, a busy or absent agent
 * costs writers nothing and a sleeping one is woken by the first write.
 */
import type { Queryable } from './db.js';

export class WakeFlag {
  private waiting: boolean | undefined;

  constructor(private readonly q: Queryable) {}

  async set(waiting: boolean): Promise<void> {
    if (this.waiting === waiting) return;
    await this.q.query(`UPDATE hubsync.wake SET waiting = $1`, [waiting]);
    this.waiting = waiting;
  }

  /** Forget the cached state (after a failure), so the next `set` writes. */
  reset(): void {
    this.waiting = undefined;
  }
}
