/**
 * Shared by every benchmark: describe the machine, format a table, and write one section of
 * docs/benchmarks.md without touching the sections other benchmarks wrote.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCHMARKS_FILE = fileURLToPath(new URL('../../docs/benchmarks.md', import.meta.url));

const INTRO = `# Benchmarks

Measured figures, not targets. Each section is written by the command it names (which replaces
that section only), with the date and the machine it ran on; rerun the command to refresh it.
Figures from different machines are not comparable.
`;

export interface Machine {
  readonly cpu: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly node: string;
  readonly os: string;
}

export function describeMachine(): Machine {
  let cpu = os.cpus()[0]?.model.trim() ?? 'unknown CPU';
  if (existsSync('/proc/cpuinfo')) {
    const line = readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('model name'));
    if (line) cpu = line.slice(line.indexOf(':') + 1).trim();
  }
  return {
    cpu,
    cores: os.availableParallelism(),
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
  };
}

export function machineLine(m: Machine = describeMachine()): string {
  return `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB RAM, Node ${m.node}, ${m.os}`;
}

/**
 * The 1-minute load average, to tell whether other work shared the machine during a run
 * (figures taken on a busy machine are low).
 */
export function loadLine(): string {
  const [load] = os.loadavg();
  return `1-minute load average at start ${(load ?? 0).toFixed(2)} on ${os.availableParallelism()} cores`;
}

/** `2025-01-31 14:05 UTC` */
export function timestamp(d = new Date()): string {
  return `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** A Markdown table; numeric cells are right-aligned. */
export function markdownTable(headers: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number'));
  const cell = (v: string | number): string => (typeof v === 'number' ? formatNumber(v) : v);
  const lines = [
    `| ${headers.join(' | ')} |`,
    `|${numeric.map((n) => (n ? '---:' : '---')).join('|')}|`,
    ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
  ];
  return lines.join('\n');
}

/** Thousands separated; decimals only below 100. */
export function formatNumber(n: number): string {
  const digits = Math.abs(n) >= 100 ? 0 : Math.abs(n) >= 10 ? 1 : 2;
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

/**
 * Replaces the section `## <title>` (up to the next `## ` heading) of the benchmarks file with
 * `body`, or appends it; creates the file with a short intro when it does not exist.
 */
export async function writeSection(title: string, body: string, file: string = BENCHMARKS_FILE): Promise<void> {
  let text = INTRO;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const section = `## ${title}\n\n${body.trim()}\n`;
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.trimEnd() === `## ${title}`);
  let next: string;
  if (start === -1) {
    next = `${text.trimEnd()}\n\n${section}`;
  } else {
    const offset = lines.slice(start + 1).findIndex((l) => l.startsWith('## '));
    const end = offset === -1 ? lines.length : start + 1 + offset;
    const before = lines.slice(0, start).join('\n').trimEnd();
    const after = lines.slice(end).join('\n').trim();
    next = [before, section.trimEnd(), after].filter((part) => part !== '').join('\n\n') + '\n';
  }
  await mkdir(dirname(file), { recursive: true });
  // Write-then-rename, so a benchmark interrupted mid-write never leaves half a file.
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, next.endsWith('\n') ? next : `${next}\n`);
  await rename(tmp, file);
}
