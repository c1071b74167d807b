/**
 * Sends conflict and dead-letter reports to the hub at a bounded rate. The hub counts every
 * frame against the branch's rate limit, so a burst of reports (two branches writing the same
 * hot rows conflict on nearly every change) would leave no room for the data itself: measured,
 * 350 reports a second held a branch's outbox back for tens of seconds. Reports are recorded in
 * the branch database before they are offered, so one that waits here loses nothing: the
 * pacer sends what fits now and reads the rest back from the database as the budget refills.
 */
import type pg from 'pg';
import { markReported, unreported, type PendingReport } from './reports.js';

/**
 * Reports per second: a tenth of the hub's default frame budget per branch (HUB_BRANCH_RATE
 * 500/s), so reports never crowd out the branch's data.
 */
export const REPORT_RATE = { perSecond: 50, burst: 200 } as const;

export interface ReportPacerDeps {
  /** Sends one report frame; false when the socket is not open (stop for now). */
  send(report: PendingReport): boolean;
  /** Marks reports as sent in the branch database. */
  mark(reports: readonly PendingReport[]): Promise<void>;
  /** Up to `limit` reports recorded and not yet sent, oldest first. */
  load(limit: number): Promise<PendingReport[]>;
  /** Reports per second, and how many may go at once. */
  readonly perSecond: number;
  readonly burst: number;
  readonly now?: () => number;
  /** A send or database error while draining in the background. */
  onError?(err: unknown): void;
}

export class ReportPacer {
  private tokens: number;
  private last: number;
  private chain: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly now: () => number;

  constructor(private readonly deps: ReportPacerDeps) {
    this.now = deps.now ?? Date.now;
    this.tokens = deps.burst;
    this.last = this.now();
  }

  /** Reports just recorded: sends those the budget allows, leaves the rest for a later drain. */
  offer(reports: readonly PendingReport[]): Promise<void> {
    if (reports.length === 0) return this.chain;
    return this.enqueue(async () => {
      const n = this.sendSome(reports);
      await this.deps.mark(reports.slice(0, n));
      if (n < reports.length) this.schedule();
    });
  }

  /** Sends reports left in the database (after a reconnect, or deferred earlier). */
  drain(): Promise<void> {
    return this.enqueue(async () => {
      this.refill();
      const limit = Math.floor(this.tokens);
      if (limit < 1) return this.schedule();
      const pending = await this.deps.load(limit);
      const n = this.sendSome(pending);
      await this.deps.mark(pending.slice(0, n));
      // A full page means more may be waiting.
      if (pending.length === limit && n === limit) this.schedule();
    });
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private sendSome(reports: readonly PendingReport[]): number {
    this.refill();
    let n = 0;
    for (const r of reports) {
      if (this.stopped || this.tokens < 1 || !this.deps.send(r)) break;
      this.tokens--;
      n++;
    }
    return n;
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.deps.burst, this.tokens + ((t - this.last) / 1000) * this.deps.perSecond);
    this.last = t;
  }

  private schedule(): void {
    if (this.stopped || this.timer) return;
    // Once a second: by then the budget holds a second's worth of reports again.
    const wait = 1000;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.drain().catch((err: unknown) => this.deps.onError?.(err));
    }, wait);
    this.timer.unref();
  }

  private enqueue(fn: () => Promise<void>): Promise<void> {
    const next = this.chain.then(fn);
    this.chain = next.catch(() => undefined);
    return next;
  }
}

/** A pacer over the branch database's conflict and dead-letter records, at `REPORT_RATE`. */
export function databaseReportPacer(pool: pg.Pool, branchId: string, io: Pick<ReportPacerDeps, 'send' | 'onError'>): ReportPacer {
  return new ReportPacer({
    ...REPORT_RATE,
    ...io,
    mark: (rs) => markReported(pool, rs),
    load: (limit) => unreported(pool, branchId, limit),
  });
}
