/**
 * `npm run docs:settings`: writes the configuration reference tables of README.md from the code
 * (`settingsTable()` in hub/config.ts, `settingsMarkdown()` in agent/config.ts), between the
 * marker comments `<!-- <name>:begin -->` and `<!-- <name>:end -->`. With `--check` it changes
 * nothing and exits 1 when README.md differs from what the code generates (test/readme.test.ts
 * does the same check in `npm test`).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { settingsMarkdown } from '../agent/config.js';
import { settingsTable } from '../hub/config.js';

export const README = fileURLToPath(new URL('../README.md', import.meta.url));

/** Each generated block of README.md: marker name → its content. */
export const GENERATED_BLOCKS: Readonly<Record<string, () => string>> = {
  'hub-settings': settingsTable,
  'agent-settings': settingsMarkdown,
};

export class MarkerError extends Error {
  override readonly name = 'MarkerError';
}

/** The text between a block's markers (without the newlines next to them). Throws when they are missing. */
export function readBlock(text: string, name: string): string {
  const begin = `<!-- ${name}:begin -->`;
  const end = `<!-- ${name}:end -->`;
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  if (i === -1 || j === -1 || j < i || text.indexOf(begin, i + 1) !== -1) {
    throw new MarkerError(`README.md needs exactly one "${begin}" followed by "${end}"`);
  }
  return text.slice(i + begin.length, j).replace(/^\n/, '').replace(/\n$/, '');
}

/** `text` with every generated block replaced by what the code generates now. */
export function renderGenerated(text: string): string {
  let out = text;
  for (const [name, generate] of Object.entries(GENERATED_BLOCKS)) {
    readBlock(out, name); // throws when the markers are missing or doubled
    const begin = `<!-- ${name}:begin -->`;
    const start = out.indexOf(begin) + begin.length;
    const stop = out.indexOf(`<!-- ${name}:end -->`);
    out = `${out.slice(0, start)}\n${generate()}\n${out.slice(stop)}`;
  }
  return out;
}

function main(args: readonly string[]): number {
  const check = args.includes('--check');
  const text = readFileSync(README, 'utf8');
  const next = renderGenerated(text);
  if (next === text) {
    console.log('README.md: configuration reference is up to date');
    return 0;
  }
  if (check) {
    console.error('README.md: configuration reference differs from the code; run npm run docs:settings');
    return 1;
  }
  writeFileSync(README, next);
  console.log('README.md: configuration reference rewritten from hub/config.ts and agent/config.ts');
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2));
}
