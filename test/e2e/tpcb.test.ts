/**
 * pgbench's own TPC-B script writing at two branches at once while they sync (issue 19): three
 * branches, two hub instances on one Redis, real agents and real pgbench. The branches' own
 * writers must not deadlock with the apply (PostgreSQL's deadlock counter stays where it was),
 * every transaction's history row reaches every branch, and all three end identical.
 * Throughput is measured by `npm run bench:sync -- --phase tpcb`, not asserted here.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentMetrics } from '../../agent/metrics.js';
import { testRedisUrl, useRedisPrefix } from '../support/redis.js';
import { converged, E2E, metric, type Branch } from './support.js';

const e2e = new E2E('tpcb');
const prefix = useRedisPrefix('tpcb');
// Lock order = configuration order = the order TPC-B updates its tables.
const TABLES = [{ name: 'public.pgbench_accounts' }, { name: 'public.pgbench_tellers' }, { name: 'public.pgbench_branches' }, { name: 'public.pgbench_history' }];
const PKS: Record<string, string[]> = {
  'public.pgbench_accounts': ['aid'],
  'public.pgbench_tellers': ['tid'],
  'public.pgbench_branches': ['bid'],
  'public.pgbench_history': ['id'],
};
const SECONDS = 8;

/**
 * pgbench's tables at scale 1 with the data `pgbench -i` generates (the same at every branch),
 * history with a key: a synced table needs one.
 */
const TPCB_DDL = `
  CREATE TABLE pgbench_branches (bid int PRIMARY KEY, bbalance int, filler char(88));
  CREATE TABLE pgbench_tellers (tid int PRIMARY KEY, bid int, tbalance int, filler char(84));
  CREATE TABLE pgbench_accounts (aid int PRIMARY KEY, bid int, abalance int, filler char(84));
  CREATE TABLE pgbench_history (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), tid int, bid int, aid int, delta int, mtime timestamp, filler char(22));
  INSERT INTO pgbench_branches VALUES (1, 0, '');
  INSERT INTO pgbench_tellers SELECT g, 1, 0, '' FROM generate_series(1, 10) g;
  INSERT INTO pgbench_accounts SELECT g, 1, 0, '' FROM generate_series(1, 100000) g;`;

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.once('error', reject);
    p.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} failed (${code}):\n${out}`))));
  });
}

function pgbenchArgs(url: string): string[] {
  const u = new URL(url);
  return ['-h', u.hostname, '-p', u.port || '5432', '-U', decodeURIComponent(u.username || 'postgres'), u.pathname.slice(1)];
}

async function deadlocks(b: Branch): Promise<number> {
  const [r] = await b.query<{ n: string }>(`SELECT deadlocks::text AS n FROM pg_stat_database WHERE datname = current_database()`);
  return Number(r?.n ?? 0);
}

let branches: Branch[] = [];

beforeAll(async () => {
  const store = await e2e.store();
  const hubs = [
    await e2e.startHub({ redisUrl: testRedisUrl, redisPrefix: prefix, instanceId: 'tpcb-1' }),
    await e2e.startHub({ redisUrl: testRedisUrl, redisPrefix: prefix, instanceId: 'tpcb-2' }),
  ];
  for (const [i, id] of ['a', 'b', 'c'].entries()) {
    const hub = hubs[i % 2] as (typeof hubs)[number];
    const b = await e2e.branch({ store, url: hub.url }, 'tpcb', id, TPCB_DDL, TABLES);
    await b.start();
    branches.push(b);
  }
}, 120_000);

afterAll(async () => {
  for (const b of branches) await b.stop().catch(() => undefined);
  await e2e.close();
});

describe('TPC-B at two branches at once', () => {
  it('no deadlocks, every transaction everywhere, all three identical', async () => {
    const [a, b] = branches as [Branch, Branch, Branch];
    const before = await Promise.all(branches.map(deadlocks));
    const outputs = await Promise.all(
      [a, b].map((x) => run('pgbench', ['-n', '-c', '4', '-j', '2', '-T', String(SECONDS), '-b', 'tpcb-like', ...pgbenchArgs(x.db.url)])),
    );
    const processed = outputs.map((o) => Number(/number of transactions actually processed: (\d+)/.exec(o)?.[1] ?? NaN));
    expect(processed.every((n) => n > 0)).toBe(true);

    const rows = await converged(branches, TABLES.map((t) => ({ name: t.name, pk: PKS[t.name] as string[] })), 120_000);
    // Every local transaction's history row is at every branch: nothing lost, nothing twice.
    expect(rows[3]?.length).toBe((processed[0] as number) + (processed[1] as number));
    expect(await Promise.all(branches.map(deadlocks))).toEqual(before);
    for (const x of branches) expect(await x.deadLetters()).toEqual([]);
    // The apply met the local writers (retries) and gave way rather than deadlock.
    const retried = await Promise.all([a, b].map((x) => metric((x.agent?.metrics as AgentMetrics).applyRetries, { reason: 'deadlock' })));
    expect(retried).toEqual([0, 0]);
  }, 240_000);
});
