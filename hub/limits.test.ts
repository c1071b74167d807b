import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../test/support/pg.js';
import type { HubApp } from './app.js';
import { CLOSE } from './errors.js';
import { change, seedBranch, startTestHub, TestAgent, tokenFor, wsUrl } from './testing/harness.js';

async function metric(app: HubApp, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${app.url}/metrics`)).text();
  const line = text.split('\n').find((l) => pattern.test(l));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

async function logCount(app: HubApp, tenant: string, origin: string): Promise<number> {
  const { rows } = await app.ctx.pool.query(`SELECT count(*)::int AS n FROM tenant_${tenant}.log WHERE origin = $1`, [origin]);
  return rows[0].n as number;
}

describe('limits', () => {
  const db = useTestDatabase('limits');
  let app: HubApp;
  const keys = new Map<string, string>();
  const open = async (tenant: string, branch: string) =>
    TestAgent.open(wsUrl(app), await tokenFor(app.url, tenant, branch, keys.get(`${tenant}/${branch}`) as string));

  beforeAll(async () => {
    app = await startTestHub(db.url, {
      maxFrameBytes: 16 * 1024,
      maxChangesPerBatch: 5,
      maxConnections: 6,
      branchRate: { perSecond: 0.01, burst: 4 },
      tenantRate: undefined,
      maxViolations: 3,
    });
    for (const b of ['big', 'many', 'rate', 'bad', 'stray', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7']) keys.set(`lim/${b}`, await seedBranch(app.ctx.store, 'lim', b));
    await app.ctx.store.createTenant('tight', { rateLimit: { messagesPerSecond: 0.01, burst: 2 } });
    for (const b of ['t1', 't2']) keys.set(`tight/${b}`, await seedBranch(app.ctx.store, 'tight', b));
  });
  afterAll(() => app.stop());

  it('closes the socket with 1009 on a frame over the maximum size, and stores nothing', async () => {
    const a = await open('lim', 'big');
    a.send({ type: 'sync.batch', id: 'x', batch_id: 'big', changes: [change('big', 1, { row: { id: '1', blob: 'x'.repeat(20_000) } })] });
    expect((await a.closed).code).toBe(CLOSE.tooBig);
    expect(await logCount(app, 'lim', 'big')).toBe(0);
    await expect.poll(() => metric(app, /^hub_broker_limit_violations_total\{limit="frame_size"/)).toBe(1);
    // Counted as the 1009 ws sent, not as the 1006 of the socket that ended after it.
    await expect.poll(() => metric(app, /^hub_broker_connections_closed_total\{code="1009"/)).toBe(1);
  });

  it('closes a socket whose frame header declares 2^63-1 bytes with 1009 and counts it as a frame over the limit', async () => {
    const a = await open('lim', 'big');
    // A masked binary frame header (as clients must send) with the largest 64-bit length, and no payload.
    // ws keeps its TCP socket in _socket (not typed); the frame has to bypass ws's own framing.
    (a.ws as unknown as { _socket: Socket })._socket.write(Buffer.from([0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4]));
    expect((await a.closed).code).toBe(CLOSE.tooBig);
    await expect.poll(() => metric(app, /^hub_broker_limit_violations_total\{limit="frame_size"/)).toBe(2);
    await expect.poll(() => metric(app, /^hub_broker_connections_closed_total\{code="1009"/)).toBe(2);
  });

  it('refuses a batch with more changes than allowed with batch_too_large, and stores nothing', async () => {
    const a = await open('lim', 'many');
    a.sendChanges('many', 6);
    expect(await a.next('error')).toMatchObject({ code: 'batch_too_large' });
    expect(await logCount(app, 'lim', 'many')).toBe(0);
    expect((await a.append('many', 5)).offsets).toHaveLength(5);
    await a.close();
  });

  it('refuses frames over the branch rate limit with rate_limited, and stores nothing of them', async () => {
    const a = await open('lim', 'rate');
    const ids = [1, 2, 3, 4, 5, 6].map(() => a.sendChanges('rate', 1).batchId);
    const acks = await Promise.all(ids.slice(0, 4).map((id) => a.next('sync.ack', (f) => f.batch_id === id)));
    expect(acks).toHaveLength(4);
    const errors = [await a.next('error'), await a.next('error')];
    expect(errors.map((e) => e.code)).toEqual(['rate_limited', 'rate_limited']);
    expect(errors[0]?.message).toMatch(/branch rate limit/);
    expect(await logCount(app, 'lim', 'rate')).toBe(4);
    expect(await metric(app, /^hub_broker_rate_limited_total\{scope="branch"/)).toBe(2);
    await a.close();
  });

  it('applies a tenant’s own rate limit across its branches', async () => {
    const t1 = await open('tight', 't1');
    const t2 = await open('tight', 't2');
    await t1.append('t1', 1);
    await t2.append('t2', 1);
    t1.sendChanges('t1', 1);
    expect(await t1.next('error')).toMatchObject({ code: 'rate_limited', message: expect.stringMatching(/tenant/) });
    await t1.close();
    await t2.close();
  });

  it('refuses connections over the per-instance maximum with HTTP 503', async () => {
    const agents: TestAgent[] = [];
    for (const b of ['c1', 'c2', 'c3', 'c4', 'c5', 'c6']) agents.push(await open('lim', b));
    const refused = await TestAgent.connect(wsUrl(app), await tokenFor(app.url, 'lim', 'c7', keys.get('lim/c7') as string)).catch(
      (err: { status?: number }) => err.status,
    );
    expect(refused).toBe(503);
    await Promise.all(agents.map((a) => a.close()));
  });

  it('answers bad frames with error frames and closes with 4029 once they pile up', async () => {
    const a = await open('lim', 'bad');
    a.sendRaw('not json');
    expect(await a.next('error')).toMatchObject({ code: 'malformed_frame' });
    a.send({ type: 'nope', id: 'n1' });
    expect(await a.next('error')).toMatchObject({ code: 'unknown_type', ref: 'n1' });
    a.send({ type: 'sync.applied', id: 'n2', offset: -1 });
    expect(await a.next('error')).toMatchObject({ code: 'invalid_frame', ref: 'n2' });
    a.send({ type: 'sync.applied', id: 'n3' });
    expect((await a.closed).code).toBe(CLOSE.violations);
  });

  it('counts batches to an unknown branch as violations: a client sending them in a loop is closed with 4029', async () => {
    const a = await open('lim', 'stray');
    for (let i = 0; i < 3; i++) {
      a.sendChanges('stray', 1, { to: `nobody-${i}` });
      expect(await a.next('error')).toMatchObject({ code: 'unknown_target' });
    }
    a.sendChanges('stray', 1, { to: 'nobody-3' });
    expect((await a.closed).code).toBe(CLOSE.violations);
    const { rows } = await app.ctx.pool.query(`SELECT count(*)::int AS n FROM tenant_lim.log WHERE origin = 'stray'`);
    expect(rows[0].n).toBe(0);
  });
});

describe('slow consumers', () => {
  const db = useTestDatabase('slow');
  let app: HubApp;
  const keys = new Map<string, string>();
  const open = async (branch: string) => TestAgent.open(wsUrl(app), await tokenFor(app.url, 's', branch, keys.get(branch) as string));

  beforeAll(async () => {
    app = await startTestHub(db.url, {
      maxUnappliedEntries: 40,
      maxChangesPerBatch: 100,
      deliveryPageEntries: 10,
      sendPauseBytes: 64 * 1024,
      sendCloseBytes: 256 * 1024,
      branchRate: undefined,
      tenantRate: undefined,
    });
    for (const b of ['w', 'r', 'stuck']) keys.set(b, await seedBranch(app.ctx.store, 's', b));
  });
  afterAll(() => app.stop());

  it('pauses a reader that does not apply, then resumes from the log once it does; nothing lost, nothing twice', async () => {
    const r = await open('r');
    const w = await open('w');
    const offsets: number[] = [];
    for (let i = 0; i < 20; i++) offsets.push(...(await w.append('w', 5)).offsets);
    await expect.poll(() => app.ctx.registry.get('s', 'r')?.info().mode).toBe('paused');
    // Bounded: at most the unapplied limit plus one notification's worth was pushed.
    expect(r.delivered().length).toBeLessThanOrEqual(45);
    expect(await metric(app, /^hub_broker_slow_consumers_total\{action="paused"/)).toBeGreaterThanOrEqual(1);
    // Applying as it goes, the reader gets the rest from the log.
    const applyAll = setInterval(() => {
      const last = r.delivered().at(-1);
      if (last) r.applied(last[0]);
    }, 20);
    await expect.poll(() => r.delivered().length, { timeout: 15_000 }).toBe(offsets.length);
    clearInterval(applyAll);
    expect(r.delivered().map((e) => e[0])).toEqual(offsets);
    await r.close();
    await w.close();
  });

  it('closes a socket whose send buffer passes the cap with 4008', async () => {
    // Start at the head, so what it gets are live pushes of whole batches.
    const { rows } = await app.ctx.pool.query(`SELECT coalesce(max(pos), 0)::int AS head FROM tenant_s.log`);
    await app.ctx.pool.query(`UPDATE tenant_s.cursors SET pos = $1 WHERE branch_id = 'stuck'`, [rows[0].head]);
    const stuck = await open('stuck');
    // The reader stops reading from its socket; kernel buffers fill, then the hub's.
    const socket = (stuck.ws as unknown as { _socket: Socket })._socket;
    socket.pause();
    const w = await open('w');
    w.nextSeq = 10_000;
    // Pages bigger than the gap between the pause threshold and the cap: one push jumps over the cap.
    const blob = 'x'.repeat(3000);
    for (let i = 0; i < 300 && (await metric(app, /^hub_broker_slow_consumers_total\{action="closed"/)) === 0; i++) {
      const changes = Array.from({ length: 100 }, (_, j) => change('w', 10_000 + i * 100 + j, { row: { id: String(j), blob } }));
      w.send({ type: 'sync.batch', id: `s${i}`, batch_id: `s${i}`, changes });
      await w.next('sync.ack', (a) => a.batch_id === `s${i}`);
      // Applying keeps the unapplied-entries limit out of the way: only buffered bytes count here.
      const last = app.ctx.registry.get('s', 'stuck')?.delivery.deliveredUpto;
      if (last) app.ctx.registry.get('s', 'stuck')?.delivery.onApplied(last);
    }
    expect(await metric(app, /^hub_broker_slow_consumers_total\{action="closed"/)).toBe(1);
    socket.resume();
    expect((await stuck.closed).code).toBe(CLOSE.slowConsumer);
    await w.close();
  });
});
