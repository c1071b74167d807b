/**
 * Sub-sections (`### <name>`) of one `## <title>` section of docs/benchmarks.md, so a benchmark
 * with several parts can rerun one part and keep the figures of the others.
 */
import { readFile } from 'node:fs/promises';
import { BENCHMARKS_FILE, writeSection } from './report.js';

/** Replaces (or adds, in `order`) the given sub-sections of `## title`; the others stay as they were. */
export async function writeSubsections(
  title: string,
  intro: string,
  parts: ReadonlyMap<string, string>,
  order: readonly string[],
  file: string = BENCHMARKS_FILE,
): Promise<void> {
  let text = '';
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const existing = new Map<string, string>();
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.trimEnd() === `## ${title}`);
  if (start >= 0) {
    let name: string | undefined;
    let body: string[] = [];
    const flush = () => {
      if (name !== undefined) existing.set(name, body.join('\n').trim());
    };
    for (const line of lines.slice(start + 1)) {
      if (line.startsWith('## ')) break;
      if (line.startsWith('### ')) {
        flush();
        name = line.slice(4).trim();
        body = [];
      } else if (name !== undefined) {
        body.push(line);
      }
    }
    flush();
  }
  for (const [name, body] of parts) existing.set(name, body.trim());
  const names = [...order.filter((n) => existing.has(n)), ...[...existing.keys()].filter((n) => !order.includes(n))];
  const body = [intro.trim(), ...names.map((n) => `### ${n}\n\n${existing.get(n) as string}`)].join('\n\n');
  await writeSection(title, body, file);
}
