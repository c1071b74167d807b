import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../test/support/pg.js';
import type { HubApp } from './app.js';
import { CLOSE } from './errors.js';
import { seedBranch, startTestHub, TestAgent, tokenFor, wsUrl } from './testing/harness.js';

describe('suspension and deletion', () => {
  const db = useTestDatabase('suspend');
  let app: HubApp;
  const keys = new Map<string, string>();
  const open = async (tenant: string, branch: string) =>
    TestAgent.open(wsUrl(app), await tokenFor(app.url, tenant, branch, keys.get(`${tenant}/${branch}`) as string));

  beforeAll(async () => {
    app = await startTestHub(db.url);
    for (const [t, b] of [
      ['t1', 'a'],
      ['t1', 'b'],
      ['t2', 'a'],
      ['t3', 'a'],
    ] as const) {
      keys.set(`${t}/${b}`, await seedBranch(app.ctx.store, t, b));
    }
  });
  afterAll(() => app.stop());

  it('closes a suspended branch’s socket with 4003 and leaves the others', async () => {
    const a = await open('t1', 'a');
    const b = await open('t1', 'b');
    await app.ctx.store.suspendBranch('t1', 'a');
    expect((await a.closed).code).toBe(CLOSE.suspended);
    expect(b.closedWith).toBeUndefined();
    await app.ctx.store.resumeBranch('t1', 'a');
    const again = await open('t1', 'a');
    await again.close();
    await b.close();
  });

  it('closes every socket of a suspended tenant with 4003', async () => {
    const a = await open('t2', 'a');
    await app.ctx.store.suspendTenant('t2');
    expect((await a.closed).code).toBe(CLOSE.suspended);
  });

  it('closes the sockets of a deleted tenant with 4003', async () => {
    const a = await open('t3', 'a');
    await app.ctx.store.deleteTenant('t3');
    expect((await a.closed).code).toBe(CLOSE.suspended);
  });
});

describe('heartbeat', () => {
  const db = useTestDatabase('heartbeat');

  it('terminates a socket that stops answering pings, and keeps one that answers', async () => {
    const app = await startTestHub(db.url, { heartbeatMs: 150 });
    const kd = await seedBranch(app.ctx.store, 'acme', 'dead');
    const kl = await seedBranch(app.ctx.store, 'acme', 'live');
    const live = await TestAgent.open(wsUrl(app), await tokenFor(app.url, 'acme', 'live', kl));
    const dead = await TestAgent.connect(wsUrl(app), await tokenFor(app.url, 'acme', 'dead', kd), { autoPong: false });
    // No close frame: the hub drops the TCP connection.
    expect((await dead.closed).code).toBe(1006);
    expect(live.closedWith).toBeUndefined();
    await expect.poll(() => app.ctx.registry.get('acme', 'dead')).toBeUndefined();
    expect(app.ctx.registry.get('acme', 'live')).toBeDefined();
    await live.close();
    await app.stop();
  });
});

describe('graceful shutdown', () => {
  const db = useTestDatabase('shutdown');

  it('closes sockets with 1012 and loses no acknowledged append', async () => {
    const app = await startTestHub(db.url, { branchRate: undefined, tenantRate: undefined });
    const key = await seedBranch(app.ctx.store, 'acme', 'w');
    const w = await TestAgent.open(wsUrl(app), await tokenFor(app.url, 'acme', 'w', key));
    const acked = new Map<string, number[]>();
    const sent: string[] = [];
    for (let i = 0; i < 50; i++) sent.push(w.sendChanges('w', 20).batchId);
    // Wait until some of them are in, then shut down while the rest are in flight.
    await w.next('sync.ack', (a) => a.batch_id === sent[5]);
    const stopped = app.stop();
    const closed = await w.closed;
    await stopped;
    expect(closed.code).toBe(CLOSE.restart);
    for (const a of w.received('sync.ack')) acked.set(a.batch_id, a.offsets);
    expect(acked.size).toBeGreaterThan(5);

    // Every acknowledged change is in the log, at the offset the ack gave.
    const again = await startTestHub(db.url);
    const { rows } = await again.ctx.pool.query<{ pos: string }>(`SELECT pos FROM tenant_acme.log ORDER BY pos`);
    const stored = new Set(rows.map((r) => Number(r.pos)));
    for (const offsets of acked.values()) for (const o of offsets) expect(stored.has(o)).toBe(true);
    expect((await fetch(`${again.url}/ready`)).status).toBe(200);
    await again.stop();
  });

  it('every agent sees 1012 and the hub counts 1012, though it drops the sockets without waiting for their answers', async () => {
    const app = await startTestHub(db.url);
    const agents = [];
    for (let i = 0; i < 30; i++) {
      const key = await seedBranch(app.ctx.store, 'many', `b${i}`);
      agents.push(await TestAgent.open(wsUrl(app), await tokenFor(app.url, 'many', `b${i}`, key)));
    }
    await app.stop();
    const codes = await Promise.all(agents.map(async (a) => (await a.closed).code));
    expect(codes).toEqual(agents.map(() => CLOSE.restart));
    const closed = (await app.ctx.metrics.connectionsClosed.get()).values.map((v) => [v.labels.code, v.value]);
    expect(closed).toEqual([[String(CLOSE.restart), 30]]);
  });

  it('refuses new connections and reports not ready while draining', async () => {
    const app = await startTestHub(db.url);
    app.ctx.draining = true;
    expect((await fetch(`${app.url}/ready`)).status).toBe(503);
    const key = await seedBranch(app.ctx.store, 'drain', 'a');
    const refused = await TestAgent.connect(wsUrl(app), await tokenFor(app.url, 'drain', 'a', key)).catch((err: { status?: number }) => err.status);
    expect(refused).toBe(503);
    await app.stop();
  });
});
