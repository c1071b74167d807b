/**
 * Redis restarting under two hub instances (issue 19): a private redis-server on its own port
 * (the shared one serves other test files), stopped with `shutdown nosave` and started again
 * empty. Connections that stayed up must be registered again, and admin listings must answer
 * while Redis is away.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../test/support/net.js';
import { useTestDatabase } from '../test/support/pg.js';
import { locatedBranches } from '../test/support/redis.js';
import type { HubApp } from './app.js';
import { seedBranch, startTestHub, TestAgent, tokenFor, wsUrl } from './testing/harness.js';

const ADMIN = 'admin-token-for-redis-restart-5c1e';
const PREFIX = 'hb:restart:';

describe('Redis restarting under two hub instances', () => {
  const db = useTestDatabase('redisrestart');
  const dir = mkdtempSync(join(tmpdir(), 'hb-redis-'));
  let port = 0;
  let redis: ChildProcess | undefined;
  const apps: HubApp[] = [];
  const agents: TestAgent[] = [];

  const startRedis = async (): Promise<void> => {
    redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
    for (let i = 0; i < 100; i++) {
      if (spawnSync('redis-cli', ['-p', String(port), 'ping']).stdout?.toString().trim() === 'PONG') return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('redis-server did not start');
  };
  const stopRedis = async (): Promise<void> => {
    const r = redis;
    if (!r || r.exitCode !== null) return;
    const exited = new Promise((resolve) => r.once('exit', resolve));
    spawnSync('redis-cli', ['-p', String(port), 'shutdown', 'nosave']);
    await exited;
  };
  const located = () => locatedBranches({ port }, PREFIX, 'acme');
  const listing = async (app: HubApp): Promise<{ status: number; body: { note?: string; branches: { id: string; online: boolean | null; instance: string | null }[] } }> => {
    const res = await fetch(`${app.url}/admin/tenants/acme/branches`, { headers: { authorization: `Bearer ${ADMIN}` } });
    return { status: res.status, body: (await res.json()) as never };
  };

  beforeAll(async () => {
    port = await freePort();
    await startRedis();
    const opts = { redisUrl: `redis://127.0.0.1:${port}`, redisPrefix: PREFIX, probeIntervalMs: 200, adminToken: ADMIN };
    apps.push(await startTestHub(db.url, { ...opts, instanceId: 'one' }), await startTestHub(db.url, { ...opts, instanceId: 'two' }));
    const [one, two] = apps as [HubApp, HubApp];
    for (const [b, app] of [['x', one], ['y', two], ['z', two]] as const) {
      const key = await seedBranch(one.ctx.store, 'acme', b);
      agents.push(await TestAgent.open(wsUrl(app), await tokenFor(app.url, 'acme', b, key)));
    }
    for (let i = 0; i < 100 && Object.keys(await located()).length < 3; i++) await new Promise((r) => setTimeout(r, 50));
  });

  afterAll(async () => {
    for (const a of agents) await a.close().catch(() => undefined);
    for (const app of apps) await app.stop().catch(() => undefined);
    await stopRedis();
    rmSync(dir, { recursive: true, force: true });
  });

  it('while Redis is away, admin listings answer from the database and this instance, with a note', async () => {
    await stopRedis();
    const [one] = apps as [HubApp, HubApp];
    const r = await listing(one);
    expect(r.status).toBe(200);
    expect(r.body.note).toMatch(/location registry is unreachable/);
    // x is on this instance: known online; y and z may be online elsewhere: unknown, not "no".
    expect(r.body.branches.map((b) => [b.id, b.online, b.instance])).toEqual([
      ['x', true, 'one'],
      ['y', null, null],
      ['z', null, null],
    ]);
    expect(await one.ctx.metrics.registryUnavailable.get().then((m) => m.values[0]?.value)).toBeGreaterThan(0);
  });

  it('after Redis restarts empty, every connection that stayed up is registered again, on its own instance', async () => {
    await startRedis();
    await expect.poll(located, { timeout: 15_000 }).toEqual({ x: 'one', y: 'two', z: 'two' });
    const [one] = apps as [HubApp, HubApp];
    await expect
      .poll(async () => (await listing(one)).body.branches.map((b) => [b.id, b.online, b.instance]), { timeout: 10_000 })
      .toEqual([
        ['x', true, 'one'],
        ['y', true, 'two'],
        ['z', true, 'two'],
      ]);
    expect((await listing(one)).body.note).toBeUndefined();
    // The connections themselves never dropped.
    for (const a of agents) expect(a.closedWith).toBeUndefined();
  });

  it('a connection that a newer one replaced while Redis was away is closed when Redis returns', async () => {
    const [one, two] = apps as [HubApp, HubApp];
    await stopRedis();
    await startRedis();
    const c = new Redis({ port, lazyConnect: true });
    await c.connect();
    // What a newer connection's claim (on instance two, while one still held the socket) leaves.
    await c.hset(`${PREFIX}loc:acme`, 'x', `two|1|${Date.now()}`);
    c.disconnect();
    const old = agents[0] as TestAgent;
    await expect.poll(() => old.closedWith !== undefined, { timeout: 15_000 }).toBe(true);
    expect(one.ctx.registry.get('acme', 'x')).toBeUndefined();
    expect(two.ctx.registry.get('acme', 'y')).toBeDefined();
  });
});
