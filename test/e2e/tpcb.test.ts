/**
 * pgbench's own TPC-B script writing at two branches at once while they sync (issue 19): three
 * branches, two hub instances on one Redis, real agents and real pgbench. The branches' own
 * writers must not deadlock with the apply (PostgreSQL's deadlock counter stays where it was),
 * every transaction's history row reaches every branch, and all three end identical.
 * Throughput is measured by `npm run bench:sync -- --phase tpcb`, not asserted here.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentMetrics } from '../../agent/metrics.js';
import { testRedisUrl, useRedisPrefix } from '../support/redis.js';
import { tpcb, TPCB_DDL, TPCB_TABLES } from '../support/tpcb.js';
import { converged, E2E, metric, type Branch } from './support.js';

const e2e = new E2E('tpcb');
const prefix = useRedisPrefix('tpcb');
const TABLES = TPCB_TABLES.map((t) => ({ name: t.name }));
const SECONDS = 8;

async function deadlocks(b: Branch): Promise<number> {
  const [r] = await b.query<{ n: string }>(`SELECT deadlocks::text AS n FROM pg_stat_database WHERE datname = current_database()`);
  return Number(r?.n ?? 0);
}

const branches: Branch[] = [];

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
    const runs = await Promise.all([a, b].map((x) => tpcb(x.db.url, SECONDS)));
    const processed = runs.map((r) => r.transactions);
    expect(processed.every((n) => n > 0), runs.map((r) => r.output).join('\n')).toBe(true);

    const rows = await converged(branches, TPCB_TABLES, 120_000);
    // Every local transaction's history row is at every branch: nothing lost, nothing twice.
    expect(rows[3]?.length).toBe((processed[0] as number) + (processed[1] as number));
    expect(await Promise.all(branches.map(deadlocks))).toEqual(before);
    for (const x of branches) expect(await x.deadLetters()).toEqual([]);
    // The apply met the local writers (retries) and gave way rather than deadlock.
    const retried = await Promise.all([a, b].map((x) => metric((x.agent?.metrics as AgentMetrics).applyRetries, { reason: 'deadlock' })));
    expect(retried).toEqual([0, 0]);
  }, 240_000);
});
