/**
 * Keeps README.md and docs/ true to the code: the configuration reference is what the code
 * generates, every relative link (and its #anchor) resolves, every doc is linked from the README,
 * and every `hub-broker` command and `hub_broker_` metric the docs name exists.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { AgentMetrics } from '../agent/metrics.js';
import { help as adminHelp } from '../cli/commands/admin.js';
import { help as agentHelp } from '../cli/commands/agent.js';
import { help as hubHelp } from '../cli/commands/hub.js';
import { createMetrics } from '../hub/metrics.js';
import { OperatorMetrics } from '../operator/metrics.js';
import { GENERATED_BLOCKS, readBlock, renderGenerated } from '../scripts/docs-settings.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');

/** README.md and every Markdown file under docs/, as paths from the repository root. */
function docFiles(): string[] {
  const docs = readdirSync(join(ROOT, 'docs'), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.md'))
    .map((f) => join('docs', f));
  return ['README.md', ...docs.sort()];
}

/** Markdown without fenced code blocks and inline code (links there are not links). */
function prose(text: string): string {
  return text.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[ \t]*$/gm, '').replace(/`[^`\n]*`/g, '');
}

/** Only the code of Markdown: fenced blocks and inline code spans, one per line. */
function code(text: string): string {
  const fences = [...text.matchAll(/^(```|~~~)[^\n]*\n([\s\S]*?)^\1[ \t]*$/gm)].map((m) => m[2] as string);
  const rest = text.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[ \t]*$/gm, '');
  const spans = [...rest.matchAll(/`([^`\n]+)`/g)].map((m) => m[1] as string);
  return [...fences, ...spans].join('\n');
}

/** GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to dashes, repeats numbered. */
function anchors(text: string): Set<string> {
  const out = new Set<string>();
  const seen = new Map<string, number>();
  const withoutFences = text.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[ \t]*$/gm, '');
  for (const m of withoutFences.matchAll(/^#{1,6}[ \t]+(.+?)[ \t#]*$/gm)) {
    const base = (m[1] as string)
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase()
      .replace(/[^\p{L}\p{N} _-]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

describe('README.md configuration reference', () => {
  it('is what hub/config.ts and agent/config.ts generate (npm run docs:settings rewrites it)', () => {
    const readme = read('README.md');
    for (const [name, generate] of Object.entries(GENERATED_BLOCKS)) {
      expect(readBlock(readme, name), `README block ${name}`).toBe(generate());
    }
    expect(renderGenerated(readme)).toBe(readme);
  });

  it('names every hub and agent environment variable', () => {
    const readme = read('README.md');
    for (const v of ['DATABASE_URL', 'REDIS_URL', 'HUB_JWT_KEYS', 'HUB_ADMIN_TOKEN', 'HUB_PORT', 'HUB_URL', 'TENANT_ID', 'BRANCH_ID', 'API_KEY', 'API_KEY_FILE', 'AGENT_TABLES']) {
      expect(readme).toContain(`\`${v}\``);
    }
  });
});

describe('links in README.md and docs/', () => {
  it('every relative link points to an existing file, and every #anchor to a heading', () => {
    const broken: string[] = [];
    for (const file of docFiles()) {
      const text = read(file);
      for (const m of prose(text).matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
        const target = m[1] as string;
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:
        const [path = '', anchor] = target.split('#', 2);
        const abs = path === '' ? join(ROOT, file) : resolve(dirname(join(ROOT, file)), decodeURIComponent(path));
        if (!existsSync(abs)) {
          broken.push(`${file}: ${target} (no ${relative(ROOT, abs)})`);
          continue;
        }
        if (anchor !== undefined && anchor !== '' && abs.endsWith('.md') && statSync(abs).isFile()) {
          if (!anchors(readFileSync(abs, 'utf8')).has(anchor)) broken.push(`${file}: ${target} (no heading #${anchor})`);
        }
      }
    }
    expect(broken).toEqual([]);
  });

  it('the README links every document in docs/', () => {
    const readme = read('README.md');
    const missing = docFiles()
      .filter((f) => f !== 'README.md')
      .filter((f) => !readme.includes(`](${f})`));
    expect(missing).toEqual([]);
  });
});

describe('commands and metrics named in README.md and docs/operations.md', () => {
  const files = ['README.md', 'docs/operations.md'];

  it('every hub_broker_ metric exists in the hub, the agent or the operator', async () => {
    const names = new Set<string>();
    const registries = [createMetrics('docs').registry, new AgentMetrics({ tenant: 't', branch: 'b' }).registry, new OperatorMetrics().registry];
    for (const r of registries) for (const m of await r.getMetricsAsJSON()) names.add(m.name);
    const unknown: string[] = [];
    for (const file of files) {
      for (const m of read(file).matchAll(/\bhub_broker_[a-z0-9_]+/g)) {
        const name = m[0].replace(/_(bucket|sum|count)$/, '');
        const known = m[0].endsWith('_') ? [...names].some((n) => n.startsWith(m[0])) : names.has(name) || names.has(m[0]);
        if (!known) unknown.push(`${file}: ${m[0]}`);
      }
    }
    expect(unknown).toEqual([]);
  });

  it('every hub-broker admin, agent and hub command, with its options, exists', () => {
    const admin = adminHelp();
    const agent = agentHelp();
    const hub = hubHelp();
    const adminVerbs = new Set([...admin.matchAll(/^ {2}([a-z-]+) \[?([a-z-]+)\]?/gm)].map((m) => `${m[1]} ${m[2]}`));
    const unknown: string[] = [];
    for (const file of files) {
      for (const m of code(read(file)).matchAll(/\bhub-broker (admin|agent|hub)\b([^\n`|#;&)]*)/g)) {
        const [command, rest = ''] = [m[1] as string, m[2] as string];
        const words = rest.trim().split(/\s+/).filter((w) => w !== '' && !w.startsWith('<') && !w.startsWith('$') && !w.startsWith('"') && !w.startsWith("'") && w !== '…' && w !== '...' && !w.startsWith('>'));
        const flags = words.filter((w) => w.startsWith('--')).map((w) => w.split('=')[0] as string);
        const firstFlag = words.findIndex((w) => w.startsWith('-'));
        const positionals = firstFlag === -1 ? words : words.slice(0, firstFlag);
        const help = command === 'admin' ? admin : command === 'agent' ? agent : hub;
        for (const f of flags) if (!help.includes(f)) unknown.push(`${file}: hub-broker ${command} … ${f}`);
        if (command === 'admin' && positionals.length >= 1) {
          const resource = ({ tenant: 'tenants', branch: 'branches', connection: 'connections' } as Record<string, string>)[positionals[0] as string] ?? (positionals[0] as string);
          const verb = resource === 'connections' || resource === 'audit' ? 'list' : positionals[1];
          if (!adminVerbs.has(`${resource} ${verb}`)) unknown.push(`${file}: hub-broker admin ${positionals.slice(0, 2).join(' ')}`);
        }
        if (command === 'agent' && positionals.length >= 1) {
          const sub = positionals[0] as string;
          if (!new RegExp(`^ {2}${sub} `, 'm').test(agent)) unknown.push(`${file}: hub-broker agent ${sub}`);
        }
      }
    }
    expect(unknown).toEqual([]);
  });
});
