/**
 * The demo's voice: step headings, facts, a progress line while it waits, a progress bar, the
 * final table. On a terminal the progress line redraws itself in place; anywhere else (CI logs,
 * a pipe) nothing is redrawn and progress is printed as an occasional plain line.
 */

export interface NarratorOptions {
  /** Where the story goes (stdout). */
  readonly write: (text: string) => void;
  /** Redraw progress in place (stdout is a terminal). */
  readonly live: boolean;
  /** ANSI colours (a terminal, and NO_COLOR unset). */
  readonly color: boolean;
  /** Without a terminal, at most one progress line per this many ms. */
  readonly quietIntervalMs?: number;
  readonly now?: () => number;
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** `1234567` → `1,234,567` (independent of the machine's locale, so logs compare). */
export function count(n: number): string {
  return String(Math.trunc(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** `[#########-----------]` for 0–100. Pure. */
export function bar(percent: number, width = 30): string {
  const p = Math.max(0, Math.min(100, percent));
  const full = Math.round((p / 100) * width);
  return `[${'#'.repeat(full)}${'-'.repeat(width - full)}]`;
}

/** Columns padded to their widest cell; `right` columns are right-aligned. Pure. */
export function table(rows: readonly (readonly string[])[], right: ReadonlySet<number> = new Set()): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) =>
    r
      .map((c, i) => (right.has(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
}

export class Narrator {
  private readonly write: (text: string) => void;
  private readonly now: () => number;
  private readonly quietIntervalMs: number;
  /** A progress line is on screen and must be erased before the next output. */
  private drawn = false;
  private lastQuiet = 0;
  private frame = 0;
  private stepNo = 0;

  constructor(private readonly options: NarratorOptions) {
    this.write = options.write;
    this.now = options.now ?? Date.now;
    this.quietIntervalMs = options.quietIntervalMs ?? 5000;
  }

  private paint(code: string, text: string): string {
    return this.options.color ? `\x1b[${code}m${text}\x1b[0m` : text;
  }

  private line(text: string): void {
    this.clear();
    this.write(`${text}\n`);
  }

  private clear(): void {
    if (this.drawn) {
      this.write('\r\x1b[K');
      this.drawn = false;
    }
  }

  title(text: string): void {
    this.line(this.paint('1', text));
  }

  /** A numbered step of the scenario. */
  step(text: string): void {
    this.line('');
    this.line(this.paint('1', `${++this.stepNo}. ${text}`));
  }

  /** An unnumbered section (setup, result). */
  section(text: string): void {
    this.line('');
    this.line(this.paint('1', text));
  }

  /** What the demo does or sees. */
  say(text: string): void {
    this.line(`   ${text}`);
  }

  /** A detail under the previous line. */
  detail(text: string): void {
    this.line(`     ${this.paint('2', text)}`);
  }

  ok(text: string, elapsedMs?: number): void {
    const time = elapsedMs === undefined ? '' : `  ${this.paint('2', `(${seconds(elapsedMs)})`)}`;
    this.line(`   ${this.paint('32', '✓')} ${text}${time}`);
  }

  fail(text: string): void {
    this.line(`   ${this.paint('31', '✗')} ${text}`);
  }

  plain(text: string): void {
    this.line(text);
  }

  /** Progress while waiting: redrawn on a terminal, an occasional line elsewhere. */
  progress(text: string, startedAt: number): void {
    const elapsed = seconds(this.now() - startedAt);
    if (this.options.live) {
      this.frame = (this.frame + 1) % SPINNER.length;
      this.clear();
      this.write(`   ${this.paint('36', SPINNER[this.frame] as string)} ${text}  ${this.paint('2', elapsed)}`);
      this.drawn = true;
      return;
    }
    const t = this.now();
    if (t - this.lastQuiet < this.quietIntervalMs) return;
    this.lastQuiet = t;
    this.write(`   … ${text} (${elapsed})\n`);
  }

  /** A progress bar; without a terminal, printed at 0, 25, 50, 75 and 100 %. */
  bar(percent: number, text: string, lastPrinted: { step: number }): void {
    const line = `${bar(percent)} ${percent.toFixed(0).padStart(3)}%  ${text}`;
    if (this.options.live) {
      this.clear();
      this.write(`   ${line}`);
      this.drawn = true;
      return;
    }
    const step = Math.floor(percent / 25);
    if (step <= lastPrinted.step) return;
    lastPrinted.step = step;
    this.write(`   ${line}\n`);
  }

  /** Starts the quiet-mode interval afresh, so a new wait prints its first line promptly. */
  resetProgress(): void {
    this.lastQuiet = this.now() - this.quietIntervalMs + 1000;
  }

  end(): void {
    this.clear();
  }
}
