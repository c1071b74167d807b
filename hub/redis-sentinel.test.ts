/**
 * Two hub instances on Redis behind Sentinel (issue 18): a real primary, replica and three
 * sentinels (test/support/redis-sentinel.ts). The primary is killed while a branch on one
 * instance writes to a branch on the other: every acknowledged change arrives once, the
 * location registry lives on at the promoted replica, and both instances report ready again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../test/support/pg.js';
import { locatedBranches } from '../test/support/redis.js';
import { startSentinels, type SentinelSetup } from '../test/support/redis-sentinel.js';
import type { HubApp } from './app.js';
import { seedBranch, startTestHub, TestAgent, tokenFor, wsUrl } from './testing/harness.js';

const PREFIX = 'hb:sentinel:';

describe('Redis Sentinel under two hub instances', () => {
  const db = useTestDatabase('redissentinel');
  let redis: SentinelSetup;
  const apps: HubApp[] = [];
  let x: TestAgent;
  let y: TestAgent;

  const ready = async (app: HubApp): Promise<boolean> => (await fetch(`${app.url}/ready`)).ok;
  const located = () => locatedBranches({ sentinels: redis.sentinels, name: redis.name }, PREFIX, 'acme');
  const deliveredOffsets = () => y.delivered().map(([offset]) => offset);

  beforeAll(async () => {
    redis = await startSentinels();
    const opts = { redisSentinels: redis.sentinels, redisSentinelName: redis.name, redisPrefix: PREFIX, probeIntervalMs: 200, pollIntervalMs: 1000 };
    apps.push(await startTestHub(db.url, { ...opts, instanceId: 'one' }), await startTestHub(db.url, { ...opts, instanceId: 'two' }));
    const [one, two] = apps as [HubApp, HubApp];
    x = await TestAgent.open(wsUrl(one), await tokenFor(one.url, 'acme', 'x', await seedBranch(one.ctx.store, 'acme', 'x')));
    y = await TestAgent.open(wsUrl(two), await tokenFor(two.url, 'acme', 'y', await seedBranch(one.ctx.store, 'acme', 'y')));
    for (let i = 0; i < 100 && Object.keys(await located()).length < 2; i++) await new Promise((r) => setTimeout(r, 100));
  }, 60_000);

  afterAll(async () => {
    await x?.close().catch(() => undefined);
    await y?.close().catch(() => undefined);
    for (const app of apps) await app.stop().catch(() => undefined);
    await redis?.stop();
  });

  it('finds the primary through the sentinels and relays between the instances', async () => {
    expect(apps[0]?.ctx.engine.kind).toBe('redis');
    expect(await located()).toEqual({ x: 'one', y: 'two' });
    const { offsets } = await x.append('x', 5);
    await expect.poll(deliveredOffsets, { timeout: 10_000 }).toEqual(offsets);
    for (const app of apps) expect(await ready(app)).toBe(true);
  });

  it('loses nothing acknowledged and applies nothing twice when the primary dies mid-sync, then recovers', async () => {
    const acked: number[] = [...deliveredOffsets()];
    const killed = redis.killPrimary();
    // Writes go on through the failover: the log is in PostgreSQL, Redis only carries wake-ups.
    for (let i = 0; i < 20; i++) {
      acked.push(...(await x.append('x', 3)).offsets);
      await new Promise((r) => setTimeout(r, 100));
    }
    const old = await killed;
    await expect.poll(() => redis.primaryPort(), { timeout: 30_000 }).not.toBe(old);
    await expect.poll(deliveredOffsets, { timeout: 30_000 }).toEqual(acked);
    expect(new Set(deliveredOffsets()).size).toBe(deliveredOffsets().length);

    // The registry is at the new primary (replicated, or written back by each instance), and
    // both instances are ready: their pub/sub self-probe comes back through it.
    await expect.poll(located, { timeout: 30_000 }).toEqual({ x: 'one', y: 'two' });
    for (const app of apps) await expect.poll(() => ready(app), { timeout: 30_000 }).toBe(true);
    expect(x.closedWith).toBeUndefined();
    expect(y.closedWith).toBeUndefined();

    // And live delivery goes on after it.
    const after = await x.append('x', 2);
    await expect.poll(deliveredOffsets, { timeout: 10_000 }).toEqual([...acked, ...after.offsets]);
  });
});
