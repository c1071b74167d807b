/**
 * Progress of a long command, for people and for logs: on a terminal one line rewritten in place;
 * otherwise (a pipe, a log collector) a line at each tenth of the work, so 200,000 rows print
 * ten lines, not two hundred.
 */
export interface ProgressOut {
  readonly isTTY?: boolean;
  write(text: string): unknown;
}

export class ProgressLine {
  private lastTenth = new Map<string, number>();
  private open = false;

  constructor(private readonly out: ProgressOut) {}

  /** `done` of `total` units of `key` (e.g. a table), described by `text`. */
  update(key: string, done: number, total: number, text: string): void {
    const pct = total > 0 ? Math.min(100, Math.floor((done / total) * 100)) : 100;
    const line = `${text} (${pct} %)`;
    if (this.out.isTTY) {
      this.out.write(`\r\x1b[2K${line}`);
      this.open = true;
      return;
    }
    const tenth = Math.floor(pct / 10);
    if (tenth <= (this.lastTenth.get(key) ?? -1)) return;
    this.lastTenth.set(key, tenth);
    this.out.write(`${line}\n`);
  }

  /** Ends the line being rewritten, if any, before other output. */
  end(): void {
    if (this.open) this.out.write('\n');
    this.open = false;
  }
}
