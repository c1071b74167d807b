import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../test/support/pg.js';
import { testRedisUrl, useRedisPrefix } from '../test/support/redis.js';
import type { HubApp } from './app.js';
import type { HubConfig } from './config.js';
import { CLOSE } from './errors.js';
import { seedBranch, startTestHub, TestAgent, tokenFor, wsUrl } from './testing/harness.js';

describe('two hub instances on one Redis', () => {
  const db = useTestDatabase('cluster');
  const prefix = useRedisPrefix('cluster');
  const keys = new Map<string, string>();
  let a: HubApp;
  let b: HubApp;
  const apps: HubApp[] = [];

  // The poll of the log head is slow here, so only pub/sub can deliver within a test's time.
  const start = async (over: Partial<HubConfig> = {}) => {
    const app = await startTestHub(db.url, { redisUrl: testRedisUrl, redisPrefix: prefix, pollIntervalMs: 60_000, probeIntervalMs: 200, ...over });
    apps.push(app);
    return app;
  };
  const open = async (app: HubApp, branch: string, tenant = 'acme') =>
    TestAgent.open(wsUrl(app), await tokenFor(app.url, tenant, branch, keys.get(`${tenant}/${branch}`) as string));

  beforeAll(async () => {
    a = await start();
    b = await start();
    for (const br of ['x', 'y', 'z', 'w', 'r', 'moving']) keys.set(`acme/${br}`, await seedBranch(a.ctx.store, 'acme', br));
    keys.set('globex/x', await seedBranch(a.ctx.store, 'globex', 'x'));
  });
  afterAll(async () => {
    for (const app of apps) await app.stop().catch(() => undefined);
  });

  it('is ready: PostgreSQL, Redis and its own pub/sub probe', async () => {
    for (const app of [a, b]) {
      await expect.poll(async () => (await fetch(`${app.url}/ready`)).status).toBe(200);
    }
  });

  it('delivers live across instances, to the sender’s tenant only', async () => {
    const x = await open(a, 'x');
    const y = await open(b, 'y');
    const z = await open(a, 'z');
    const foreign = await open(b, 'x', 'globex');
    const { offsets } = await x.append('x', 3);
    const dy = await y.next('sync.deliver');
    const dz = await z.next('sync.deliver');
    expect(dy.entries.map((e) => e[0])).toEqual(offsets);
    expect(dz.entries.map((e) => e[0])).toEqual(offsets);
    // And back the other way, targeted.
    const back = await y.append('y', 1, { to: 'x' });
    expect((await x.next('sync.deliver')).entries.map((e) => e[0])).toEqual(back.offsets);
    expect(foreign.received('sync.deliver')).toEqual([]);
    expect(z.received('sync.deliver')).toHaveLength(1);
    for (const c of [x, y, z, foreign]) await c.close();
  });

  it('forwards a conflict notification to the losing branch on the other instance', async () => {
    const x = await open(a, 'x');
    const y = await open(b, 'y');
    x.send({
      type: 'conflict.report',
      id: 'c1',
      conflict: {
        table: 'public.item',
        pk: { id: '1' },
        strategy: 'last-write-wins',
        winner: { origin: 'x', hlc: '0000018c00000001', vv: { x: 1, y: 1 }, deleted: false },
        loser: { origin: 'y', hlc: '0000018c00000000', vv: { y: 1 }, deleted: false },
        winner_row: { id: '1' },
        loser_row: { id: '1' },
        detected_at: '2026-11-27T00:00:00Z',
      },
    });
    expect(await y.next('conflict.notify')).toMatchObject({ reported_by: 'x', conflict: { loser: { origin: 'y' } } });
    await x.close();
    await y.close();
  });

  it('lets a newer connection on one instance replace an older one on the other (4009)', async () => {
    const first = await open(a, 'moving');
    const second = await open(b, 'moving');
    expect((await first.closed).code).toBe(CLOSE.replaced);
    // Deliveries now go to the instance holding the newer connection.
    const w = await open(a, 'w');
    const { offsets } = await w.append('w', 1);
    expect((await second.next('sync.deliver', (d) => d.entries[0]?.[0] === offsets[0])).entries).toHaveLength(1);
    await second.close();
    await w.close();
  });

  it('closes a suspended tenant’s sockets on every instance', async () => {
    const k1 = await seedBranch(a.ctx.store, 'susp', 'one');
    const k2 = await seedBranch(a.ctx.store, 'susp', 'two');
    const one = await TestAgent.open(wsUrl(a), await tokenFor(a.url, 'susp', 'one', k1));
    const two = await TestAgent.open(wsUrl(b), await tokenFor(b.url, 'susp', 'two', k2));
    // Suspended through the store, as the operator would do.
    await a.ctx.store.suspendTenant('susp');
    expect((await one.closed).code).toBe(CLOSE.suspended);
    expect((await two.closed).code).toBe(CLOSE.suspended);
  });

  it('shares rate-limit buckets between instances', async () => {
    await a.ctx.store.createTenant('limited', { rateLimit: { messagesPerSecond: 0.01, burst: 2 } });
    const k1 = await seedBranch(a.ctx.store, 'limited', 'p');
    const k2 = await seedBranch(a.ctx.store, 'limited', 'q');
    const p = await TestAgent.open(wsUrl(a), await tokenFor(a.url, 'limited', 'p', k1));
    const q = await TestAgent.open(wsUrl(b), await tokenFor(b.url, 'limited', 'q', k2));
    await p.append('p', 1);
    await q.append('q', 1);
    q.sendChanges('q', 1);
    expect(await q.next('error')).toMatchObject({ code: 'rate_limited' });
    await p.close();
    await q.close();
  });

  it('when an instance dies, its branches reconnect to the other and lose nothing', async () => {
    const c = await start();
    const reader = await open(c, 'r');
    const writer = await open(b, 'w');
    writer.nextSeq = 1000;
    const before = await writer.append('w', 5);
    const last = before.offsets.at(-1) as number;
    await expect.poll(() => reader.delivered().at(-1)?.[0]).toBe(last);
    reader.applied(last);
    c.kill();
    await reader.closed;
    // Written while the reader has no connection at all.
    const during = await writer.append('w', 5);
    const again = await open(b, 'r');
    const after = await writer.append('w', 5);
    const want = [...during.offsets, ...after.offsets];
    await expect.poll(() => again.delivered().map((e) => e[0]).filter((o) => want.includes(o))).toEqual(want);
    await again.close();
    await writer.close();
  });

  it('when an instance dies mid-stream, a writer resends unacknowledged batches elsewhere and each change is stored once', async () => {
    const c = await start();
    const writer = await open(c, 'z');
    writer.nextSeq = 5000;
    const batches = Array.from({ length: 10 }, () => writer.sendChanges('z', 10));
    await writer.next('sync.ack', (f) => f.batch_id === batches[2]?.batchId);
    c.kill();
    await writer.closed;
    const ackedBefore = new Map(writer.received('sync.ack').map((f) => [f.batch_id, f.offsets]));
    const again = await open(b, 'z');
    for (const batch of batches) again.send({ type: 'sync.batch', id: again.id(), batch_id: batch.batchId, changes: batch.changes });
    for (const batch of batches) {
      const ack = await again.next('sync.ack', (f) => f.batch_id === batch.batchId);
      const before = ackedBefore.get(batch.batchId);
      if (before) expect(ack.offsets).toEqual(before);
    }
    const { rows } = await b.ctx.pool.query(`SELECT origin_seq, count(*)::int AS n FROM tenant_acme.log WHERE origin = 'z' GROUP BY 1`);
    expect(rows).toHaveLength(100);
    expect(rows.every((r) => r.n === 1)).toBe(true);
    await again.close();
  });

  it('fails /ready when its pub/sub subscription is dead', async () => {
    const d = await start();
    await expect.poll(async () => (await fetch(`${d.url}/ready`)).status).toBe(200);
    // The subscriber connection dies without reconnecting; commands still work.
    (d.ctx.engine as unknown as { sub: { disconnect(reconnect: boolean): void } }).sub.disconnect(false);
    await expect.poll(async () => (await fetch(`${d.url}/ready`)).status, { timeout: 5000 }).toBe(503);
    const body = (await (await fetch(`${d.url}/ready`)).json()) as { checks: { engine: { ok: boolean } } };
    expect(body.checks.engine.ok).toBe(false);
  });
});

describe('losing Redis', () => {
  const db = useTestDatabase('noredis');
  const prefix = useRedisPrefix('noredis');

  it('delays delivery by at most two polls of the log head but loses no acknowledged change', async () => {
    const opts = { redisUrl: testRedisUrl, redisPrefix: prefix, pollIntervalMs: 200 };
    const a = await startTestHub(db.url, opts);
    const b = await startTestHub(db.url, opts);
    const kx = await seedBranch(a.ctx.store, 'acme', 'x');
    const ky = await seedBranch(a.ctx.store, 'acme', 'y');
    const x = await TestAgent.open(wsUrl(a), await tokenFor(a.url, 'acme', 'x', kx));
    const y = await TestAgent.open(wsUrl(b), await tokenFor(b.url, 'acme', 'y', ky));
    // Instance a loses Redis: it cannot notify b, nor check rate limits there (it fails open).
    (a.ctx.engine as unknown as { cmd: { disconnect(r: boolean): void } }).cmd.disconnect(false);
    const { offsets } = await x.append('x', 4);
    expect(offsets).toHaveLength(4);
    await expect.poll(() => y.delivered().map((e) => e[0]), { timeout: 5000 }).toEqual(offsets);
    await x.close();
    await y.close();
    await a.stop();
    await b.stop();
  });
});
