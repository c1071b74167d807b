/**
 * `npm start` as a newcomer runs it: the demo builds, runs the scenario on embedded databases,
 * ends with equal checksums and exits 0, leaving nothing behind. Then `--keep-running` against
 * the CI's PostgreSQL and Redis (`DATABASE_URL`, `REDIS_URL`): the printed connection strings
 * work, a row written at one branch arrives at another, and SIGTERM stops it cleanly.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { parseOptions, UsageError } from '../cli/commands/demo.js';
import { createTestDatabase, type TestDatabase } from './support/pg.js';
import { testRedisUrl } from './support/redis.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

interface Run {
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<number | null>;
}

/** The demo's own environment: none of the CI's database settings unless a test passes them. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', ...extra };
  for (const k of ['DATABASE_URL', 'REDIS_URL', 'NODE_OPTIONS', 'VITEST', 'VITEST_WORKER_ID', 'VITEST_POOL_ID']) if (!(k in extra)) delete env[k];
  return env;
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv): Run {
  const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString('utf8')));
  child.stderr?.on('data', (b: Buffer) => (out += b.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

const running: Run[] = [];
const databases: TestDatabase[] = [];
afterAll(async () => {
  for (const r of running) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
  for (const d of databases) await d.drop();
});

/** The checksum column of the result table, one per branch. */
function checksums(output: string): Map<string, string> {
  const result = output.slice(output.indexOf('\nResult'));
  const rows = [...result.matchAll(/^\s+([a-z][a-z-]+)((?:\s+[\d,]+)+)\s+([0-9a-f]{16})\s*$/gm)];
  return new Map(rows.map((m) => [m[1] as string, m[3] as string]));
}

function dataFolder(output: string): string {
  const m = /data folder (\S+)/.exec(output);
  if (!m) throw new Error(`no data folder in the output:\n${output}`);
  return m[1] as string;
}

describe('npm start', () => {
  it('runs the scenario to four branches with equal checksums, exits 0, and removes its data folder', { timeout: 240_000 }, async () => {
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const r = run(npm, ['start', '--silent'], cleanEnv());
    running.push(r);
    const code = await r.exited;
    const out = r.output();
    expect(code, out).toBe(0);
    expect(out).toContain('all 4 branches hold identical data');
    const sums = checksums(out);
    expect([...sums.keys()].sort(), out).toEqual(['store-east', 'store-north', 'store-south', 'warehouse']);
    expect(new Set(sums.values()).size, out).toBe(1);
    // Every step of the scenario was narrated and passed.
    for (const step of ['1. Writes at every branch', '2. The same row changed at two branches', '3. The same stock level sold at two branches at once', '4. A delete', '5. A column added while every branch syncs', '6. A branch goes offline', '8. A new branch joins']) {
      expect(out).toContain(step);
    }
    expect(out).toMatch(/store-south caught up/);
    expect(out).toContain('the warehouse has 120 loyalty points for customer 101');
    expect(out).toContain('every branch has 45 umbrellas: 50 − 3 − 2, both sales counted');
    expect(out).toMatch(/100%\s+[\d,]+ of [\d,]+ rows/);
    expect(existsSync(dataFolder(out))).toBe(false);
  });
});

describe('npm start -- --keep-running, with the hub on real PostgreSQL and Redis', () => {
  it('prints working connection strings, syncs rows written by hand, and stops cleanly on SIGTERM', { timeout: 240_000 }, async () => {
    const hubDb = await createTestDatabase('demo_hub');
    databases.push(hubDb);
    const r = run(process.execPath, ['--import', 'tsx', 'cli/hub-broker.ts', 'demo', '--keep-running', '--orders', '300'], cleanEnv({ DATABASE_URL: hubDb.url, REDIS_URL: testRedisUrl }));
    running.push(r);
    await expect.poll(() => r.output(), { timeout: 200_000, interval: 250 }).toContain('press Ctrl-C to stop');
    const out = r.output();
    expect(out).toContain('Redis engine');

    const hubUrl = /^\s+hub\s+(http:\/\/\S+)$/m.exec(out)?.[1];
    expect(hubUrl, out).toBeDefined();
    const metrics = await fetch(`${hubUrl}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('hub_broker_connections_active');

    const urls = [...out.matchAll(/^\s+([a-z][a-z-]+)\s+psql (postgres\S+)$/gm)].map((m) => m[2] as string);
    expect(urls.length, out).toBe(4);
    const [north, south] = await Promise.all(urls.slice(0, 2).map(async (u) => {
      const c = new pg.Client({ connectionString: u });
      await c.connect();
      return c;
    }));
    try {
      await north?.query(`INSERT INTO customer (id, name) VALUES (1000, 'Hedy Lamarr')`);
      await expect
        .poll(async () => (await south?.query<{ name: string }>(`SELECT name FROM customer WHERE id = 1000`))?.rows, { timeout: 30_000 })
        .toEqual([{ name: 'Hedy Lamarr' }]);
    } finally {
      await Promise.all([north?.end(), south?.end()]);
    }

    r.child.kill('SIGTERM');
    expect(await r.exited, r.output()).toBe(0);
    expect(r.output()).toContain('SIGTERM: stopping');
    expect(existsSync(dataFolder(out))).toBe(false);
    // The run's tenant on the shared hub database is gone with it.
    const c = new pg.Client({ connectionString: hubDb.url });
    await c.connect();
    try {
      const left = await c.query(`SELECT id FROM hub.tenants WHERE id LIKE 'demo-%'`);
      expect(left.rows).toEqual([]);
    } finally {
      await c.end();
    }
  });
});

describe('hub-broker demo, when it cannot finish', () => {
  it('stops at --timeout with one line saying so, exit code 1, and removes its data folder', { timeout: 120_000 }, async () => {
    // A million orders cannot be written and synced within the shortest timeout allowed.
    const r = run(process.execPath, ['--import', 'tsx', 'cli/hub-broker.ts', 'demo', '--timeout', '10', '--orders', '1000000'], cleanEnv());
    running.push(r);
    expect(await r.exited, r.output()).toBe(1);
    expect(r.output()).toMatch(/✗ the demo did not finish within/);
    expect(existsSync(dataFolder(r.output())), r.output()).toBe(false);
  });

  it('refuses bad options with a usage error naming them', () => {
    expect(() => parseOptions(['--orders', 'many'], {})).toThrow(UsageError);
    expect(() => parseOptions(['--orders', 'many'], {})).toThrow(/--orders must be a whole number/);
    expect(() => parseOptions(['--frobnicate'], {})).toThrow(/--frobnicate/);
    expect(() => parseOptions(['--data-dir'], {})).toThrow(/--data-dir needs a value/);
    const o = parseOptions(['--keep-running', '--orders=50'], { DATABASE_URL: 'postgres://h/db', REDIS_URL: 'redis://r' });
    expect(o).toMatchObject({ keepRunning: true, orders: 50, hubDatabaseUrl: 'postgres://h/db', redisUrl: 'redis://r' });
  });
});
