/**
 * Follows the README's "Running a hub" and "Running an agent" sections literally: every fenced
 * shell block marked `<!-- readme-test: terminal=<name> [background] -->` runs in bash, in
 * README order, in one working folder, as a person would type it into the named terminal
 * (blocks of one terminal share its environment; a `background` block keeps running, like a
 * command left in the foreground of its own terminal). `hub-broker` is this checkout's CLI.
 * Only the database URLs and the hub's port are replaced (with throwaway databases and a free
 * port), and Redis keys get a prefix of their own. It ends with a row written at one branch
 * read at the other. When the README's commands are wrong, this fails.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/pg.js';
import { freePort } from './support/net.js';
import { deleteRedisPrefix, newRedisPrefix, testRedisUrl } from './support/redis.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));


interface ReadmeStep {
  readonly terminal: string;
  readonly background: boolean;
  readonly script: string;
  /** Line of the block in README.md, for messages. */
  readonly line: number;
}

/** The marked shell blocks of a README, in order. */
function readmeSteps(readme: string): ReadmeStep[] {
  const steps: ReadmeStep[] = [];
  const re = /<!-- readme-test: ([^>]*?) -->\n```(?:sh|bash)\n([\s\S]*?)\n```/g;
  for (const m of readme.matchAll(re)) {
    const attrs = (m[1] as string).split(/\s+/);
    const terminal = attrs.find((a) => a.startsWith('terminal='))?.slice('terminal='.length);
    if (!terminal) throw new Error(`readme-test marker without terminal= near line ${readme.slice(0, m.index).split('\n').length}`);
    steps.push({
      terminal,
      background: attrs.includes('background'),
      script: m[2] as string,
      line: readme.slice(0, m.index).split('\n').length,
    });
  }
  return steps;
}

/** Replaces every occurrence of `from` (a whole URL or number, not a prefix of a longer one). */
function substitute(text: string, from: string, to: string, counts: Map<string, number>): string {
  const re = new RegExp(`${from.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}(?![\\w-])`, 'g');
  return text.replace(re, () => {
    counts.set(from, (counts.get(from) ?? 0) + 1);
    return to;
  });
}

/** Environment variables a developer's shell may hold that would change what the commands do. */
const SCRUB = /^(DATABASE_URL|REDIS_URL|REDIS_PREFIX|HUB_.*|AGENT_.*|API_KEY.*|TENANT_ID|BRANCH_ID|LOG_LEVEL|PG[A-Z]+)$/;

interface Background {
  readonly step: ReadmeStep;
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<number | null>;
}

describe('README walkthrough: a hub on PostgreSQL and Redis, two agents, a row from one branch at the other', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const steps = readmeSteps(readme);
  const dbs: TestDatabase[] = [];
  const running: Background[] = [];
  const redisPrefix = newRedisPrefix('readme');
  let work = '';

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'hub-broker-readme-'));
    // `hub-broker` on PATH: this checkout's CLI, run from its TypeScript sources.
    const bin = join(work, '.bin');
    mkdirSync(bin);
    const tsx = import.meta.resolve('tsx');
    writeFileSync(join(bin, 'hub-broker'), `#!/bin/sh\nexec "${process.execPath}" --import "${tsx}" "${join(ROOT, 'cli/hub-broker.ts')}" "$@"\n`);
    chmodSync(join(bin, 'hub-broker'), 0o755);
  });

  afterAll(async () => {
    for (const b of running) {
      try {
        process.kill(-(b.child.pid as number), 'SIGTERM');
      } catch {
        // already gone
      }
    }
    await Promise.all(
      running.map((b) =>
        Promise.race([b.exited, new Promise((r) => setTimeout(r, 10_000))]).then(() => {
          try {
            process.kill(-(b.child.pid as number), 'SIGKILL');
          } catch {
            // exited
          }
        }),
      ),
    );
    await Promise.all(dbs.map((d) => d.drop()));
    await deleteRedisPrefix(redisPrefix);
    if (work) rmSync(work, { recursive: true, force: true });
  }, 60_000);

  it('has the marked blocks the walkthrough needs', () => {
    expect(steps.length).toBeGreaterThanOrEqual(5);
    expect(steps.filter((s) => s.background && /\bhub-broker hub\b/.test(s.script))).toHaveLength(1);
    expect(steps.filter((s) => s.background && /^hub-broker agent --config/m.test(s.script)).length).toBeGreaterThanOrEqual(2);
    for (const tool of ['bash', 'psql', 'jq', 'openssl', 'curl']) {
      expect(spawnSync('sh', ['-c', `command -v ${tool}`]).status, `${tool} is needed to follow the README`).toBe(0);
    }
  });

  it('runs them as written and the row written at store-1 arrives at store-2', async () => {
    const [hubDb, store1, store2] = await Promise.all([createTestDatabase('readme_hub'), createTestDatabase('readme_store1'), createTestDatabase('readme_store2')]);
    dbs.push(hubDb, store1, store2);
    const port = await freePort();
    const replacements: [string, string][] = [
      ['postgres://postgres@127.0.0.1:5432/hub', hubDb.url],
      ['postgres://postgres@127.0.0.1:5432/store1', store1.url],
      ['postgres://postgres@127.0.0.1:5432/store2', store2.url],
      ['redis://127.0.0.1:6379', testRedisUrl],
      ['8080', String(port)],
    ];
    const counts = new Map<string, number>();
    const scripts = steps.map((s) => replacements.reduce((text, [from, to]) => substitute(text, from, to, counts), s.script));
    for (const [from] of replacements) expect(counts.get(from) ?? 0, `README blocks use ${from}`).toBeGreaterThan(0);

    const base: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !SCRUB.test(k)) base[k] = v;
    base.PATH = `${join(work, '.bin')}:${process.env.PATH ?? ''}`;
    base.REDIS_PREFIX = redisPrefix;
    base.NO_COLOR = '1';
    const terminals = new Map<string, Record<string, string>>();
    const transcript: string[] = [];

    for (const [i, step] of steps.entries()) {
      const env = terminals.get(step.terminal) ?? { ...base };
      const file = join(work, `.step-${i}.sh`);
      writeFileSync(file, `${scripts[i]}\n`);
      const where = `README.md line ${step.line} (terminal ${step.terminal})`;
      if (!step.background) {
        const envFile = join(work, `.env-${i}`);
        // Sourced, so that its exports stay in its terminal for the next block there.
        const r = spawnSync('bash', ['-eo', 'pipefail', '-c', '. "$1"; env -0 > "$2"', 'bash', file, envFile], {
          cwd: work,
          env,
          encoding: 'utf8',
          timeout: 60_000,
        });
        transcript.push(`$ # ${where}\n${r.stdout}${r.stderr}`);
        if (r.status !== 0) throw new Error(`${where} failed (exit ${r.status ?? r.signal}):\n${scripts[i]}\n--- output\n${r.stdout}${r.stderr}`);
        const next: Record<string, string> = {};
        for (const entry of readFileSync(envFile, 'utf8').split('\0')) {
          const eq = entry.indexOf('=');
          if (eq > 0) next[entry.slice(0, eq)] = entry.slice(eq + 1);
        }
        terminals.set(step.terminal, next);
        continue;
      }
      terminals.set(step.terminal, env);
      const child = spawn('bash', ['-eo', 'pipefail', file], { cwd: work, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout?.on('data', (b: Buffer) => (out = (out + b.toString('utf8')).slice(-200_000)));
      child.stderr?.on('data', (b: Buffer) => (out = (out + b.toString('utf8')).slice(-200_000)));
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      const bg: Background = { step, child, output: () => out, exited };
      running.push(bg);
      // Wait until it serves: the hub answers /ready, an agent logs that it is connected.
      const isHub = /\bhub-broker hub\b/.test(step.script);
      let gone = false;
      void exited.then(() => (gone = true));
      const deadline = Date.now() + 30_000;
      for (;;) {
        if (gone) throw new Error(`${where} stopped (exit ${await exited}):\n${scripts[i]}\n--- output\n${out}`);
        if (isHub) {
          const ok = await fetch(`http://127.0.0.1:${port}/ready`).then((r) => r.ok, () => false);
          if (ok) break;
        } else if (out.includes('"msg":"connected to the hub"')) {
          break;
        }
        if (Date.now() > deadline) throw new Error(`${where} did not come up in 30 s:\n--- output\n${out}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }

    // Both rows (one published from before the install, one written afterwards) at store-2,
    // and the two branches identical.
    const rows = async (url: string) => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        return (await c.query<{ id: string; name: string; email: string }>('SELECT id::text, name, email FROM customer ORDER BY id')).rows;
      } finally {
        await c.end();
      }
    };
    const expected = [
      { id: '1', name: 'Ada', email: 'ada@example.com' },
      { id: '2', name: 'Grace', email: 'grace@example.com' },
    ];
    const deadline = Date.now() + 20_000;
    let seen = await rows(store2.url);
    while (JSON.stringify(seen) !== JSON.stringify(expected) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      seen = await rows(store2.url);
    }
    if (JSON.stringify(seen) !== JSON.stringify(expected)) {
      const logs = running.map((b) => `--- README.md line ${b.step.line} (terminal ${b.step.terminal})\n${b.output().slice(-4000)}`).join('\n');
      throw new Error(`store-2 holds ${JSON.stringify(seen)}\n${transcript.join('\n')}\n${logs}`);
    }
    expect(await rows(store1.url)).toEqual(expected);
  }, 120_000);
});
