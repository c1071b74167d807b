import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeHlc } from '../protocol/index.js';
import { useTestDatabase } from '../test/support/pg.js';
import type { HubApp } from './app.js';
import * as log from './log.js';
import { change, seedBranch, startTestHub, TestAgent, tokenFor, wsUrl } from './testing/harness.js';

describe('relay on one instance', () => {
  const db = useTestDatabase('relay');
  let app: HubApp;
  const keys = new Map<string, string>();

  const open = async (tenant: string, branch: string, options: { msgpack?: boolean } = {}) =>
    TestAgent.open(wsUrl(app), await tokenFor(app.url, tenant, branch, keys.get(`${tenant}/${branch}`) as string), options);

  beforeAll(async () => {
    app = await startTestHub(db.url);
    for (const [t, b] of [
      ['acme', 'a'],
      ['acme', 'b'],
      ['acme', 'c'],
      ['acme', 'offline'],
      ['acme', 'dup'],
      ['globex', 'a'],
      ['globex', 'x'],
    ] as const) {
      keys.set(`${t}/${b}`, await seedBranch(app.ctx.store, t, b));
    }
  });
  afterAll(() => app.stop());

  it('appends a batch, acknowledges it with offsets and pushes it live to the other branches of the tenant only', async () => {
    const a = await open('acme', 'a');
    const b = await open('acme', 'b', { msgpack: true });
    const c = await open('acme', 'c');
    const foreign = await open('globex', 'a');
    const { offsets, changes } = await a.append('a', 3);
    expect(offsets).toHaveLength(3);
    expect(offsets[1]).toBe((offsets[0] as number) + 1);
    for (const receiver of [b, c]) {
      const d = await receiver.next('sync.deliver');
      expect(d.entries.map((e) => e[0])).toEqual(offsets);
      expect(d.entries.map((e) => e[1].seq)).toEqual(changes.map((x) => x.seq));
    }
    // Nothing for the sender itself, nothing for another tenant's branch of the same name.
    await b.append('b', 1);
    await expect.poll(() => a.delivered().length).toBe(1);
    expect(foreign.received('sync.deliver')).toEqual([]);
    expect(a.delivered().map((e) => e[1].origin)).toEqual(['b']);
    for (const x of [a, b, c, foreign]) await x.close();
  });

  it('delivers everything to an offline branch after it reconnects, in log order, once', async () => {
    // New to a tenant with history: it bootstraps from a snapshot, which puts its cursor at the head.
    const off = await open('acme', 'offline');
    const head = off.hello.log_head;
    expect(off.hello.bootstrap).toBe(true);
    await expect.poll(async () => (await log.branchLag(app.ctx.pool, 'tenant_acme', 'offline'))?.cursor).toBe(head);
    await off.close();

    const a = await open('acme', 'a');
    a.nextSeq = 1000;
    const sent: number[] = [];
    for (let i = 0; i < 5; i++) sent.push(...(await a.append('a', 20)).offsets);
    const b = await open('acme', 'b');
    b.nextSeq = 1000;
    sent.push(...(await b.append('b', 7)).offsets);

    const back = await open('acme', 'offline');
    expect(back.hello.cursor).toBe(head);
    await expect.poll(() => back.delivered().length).toBeGreaterThanOrEqual(sent.length);
    const got = back.delivered().map((e) => e[0]);
    expect(got.filter((o) => o > head)).toEqual(sent);
    expect(new Set(got).size).toBe(got.length);
    back.applied(sent[sent.length - 1] as number);
    await expect.poll(async () => (await log.branchLag(app.ctx.pool, 'tenant_acme', 'offline'))?.lag).toBe(0);
    for (const x of [a, b, back]) await x.close();
  });

  it('stores the latest cursor of a branch that acknowledges entry by entry, also when it disconnects right after', async () => {
    const a = await open('acme', 'a');
    a.nextSeq = 5000;
    const c = await open('acme', 'c');
    const cursor = async () => (await log.branchLag(app.ctx.pool, 'tenant_acme', 'c'))?.cursor;
    const first = (await a.append('a', 40)).offsets;
    for (const o of first) c.applied(o);
    await expect.poll(cursor).toBe(first[first.length - 1]);
    const more = (await a.append('a', 5)).offsets;
    for (const o of more) c.applied(o);
    await c.close();
    await expect.poll(cursor).toBe(more[more.length - 1]);
    await a.close();
  });

  it('stores a batch resent after a lost ack once, and answers with the same offsets', async () => {
    const dup = await open('acme', 'dup');
    const changes = [change('dup', 1), change('dup', 2), change('dup', 3)];
    dup.send({ type: 'sync.batch', id: 'x1', batch_id: 'first', changes });
    const first = await dup.next('sync.ack');
    await dup.close();
    const again = await open('acme', 'dup');
    // The resend overlaps the stored batch and adds one change.
    again.send({ type: 'sync.batch', id: 'x2', batch_id: 'again', changes: [...changes, change('dup', 4)] });
    const second = await again.next('sync.ack');
    expect(second.offsets.slice(0, 3)).toEqual(first.offsets);
    const { rows } = await app.ctx.pool.query(`SELECT origin_seq FROM tenant_acme.log WHERE origin = 'dup' ORDER BY pos`);
    expect(rows.map((r) => Number(r.origin_seq))).toEqual([1, 2, 3, 4]);
    await again.close();
  });

  it('appends pipelined batches in the order sent, each with its own contiguous offsets', async () => {
    const a = await open('acme', 'a');
    const b = await open('acme', 'b');
    a.nextSeq = 50_000;
    const sent = Array.from({ length: 20 }, () => a.sendChanges('a', 7).batchId);
    const acks = await Promise.all(sent.map((id) => a.next('sync.ack', (f) => f.batch_id === id)));
    const offsets = acks.flatMap((x) => x.offsets);
    for (const ack of acks) expect(ack.offsets).toEqual(Array.from({ length: 7 }, (_, i) => (ack.offsets[0] as number) + i));
    expect([...offsets].sort((x, y) => x - y)).toEqual(offsets);
    await expect.poll(() => b.delivered().filter((e) => e[0] >= (offsets[0] as number)).map((e) => e[0])).toEqual(offsets);
    await a.close();
    await b.close();
  });

  it('pushes pipelined batches live, in append order: no receiver has to fall back to reading the log', async () => {
    const logReads = async () =>
      (await app.ctx.metrics.deliverySeconds.get()).values.find((v) => v.metricName?.endsWith('_count') && v.labels.path === 'log')?.value ?? 0;
    const a = await open('globex', 'a');
    const b = await open('globex', 'x');
    const before = await logReads();
    a.nextSeq = 60_000;
    const sent = Array.from({ length: 200 }, () => a.sendChanges('a', 5).batchId);
    const acks = await Promise.all(sent.map((id) => a.next('sync.ack', (f) => f.batch_id === id)));
    const offsets = acks.flatMap((x) => x.offsets);
    await expect.poll(() => b.delivered().filter((e) => e[0] >= (offsets[0] as number)).length).toBe(offsets.length);
    const frames = b.received('sync.deliver').filter((d) => (d.entries[0]?.[0] ?? 0) >= (offsets[0] as number));
    // Each live delivery continues the one before it.
    for (let i = 1; i < frames.length; i++) {
      const prev = frames[i - 1]?.entries ?? [];
      expect(frames[i]?.entries[0]?.[0]).toBe((prev[prev.length - 1]?.[0] ?? 0) + 1);
    }
    expect(await logReads()).toBe(before);
    await a.close();
    await b.close();
  });

  it('sends a batch with `to` to that branch only', async () => {
    const a = await open('acme', 'a');
    const b = await open('acme', 'b');
    const c = await open('acme', 'c');
    a.nextSeq = 2000;
    const { offsets } = await a.append('a', 2, { to: 'c' });
    const d = await c.next('sync.deliver', (f) => f.entries.some((e) => e[0] === offsets[0]));
    expect(d.entries.map((e) => e[0])).toEqual(offsets);
    // b sees a later broadcast but never the targeted entries.
    const later = await a.append('a', 1);
    await b.next('sync.deliver', (f) => f.entries.some((e) => e[0] === later.offsets[0]));
    expect(b.delivered().map((e) => e[0])).not.toContain(offsets[0]);
    for (const x of [a, b, c]) await x.close();
  });

  it('refuses a `to` naming another tenant’s branch or an unknown one with an error frame, counts and audits it', async () => {
    const a = await open('acme', 'a');
    a.nextSeq = 3000;
    const cross = a.sendChanges('a', 1, { to: 'x' }); // x exists, but in globex
    expect(await a.next('error')).toMatchObject({ code: 'unknown_target' });
    a.sendChanges('a', 1, { to: 'nobody' });
    expect(await a.next('error')).toMatchObject({ code: 'unknown_target' });
    a.sendChanges('a', 1, { to: 'a' });
    expect(await a.next('error')).toMatchObject({ code: 'forbidden_target' });
    const { rows } = await app.ctx.pool.query(`SELECT 1 FROM tenant_acme.log WHERE origin_seq = $1`, [cross.changes[0]?.seq]);
    expect(rows).toEqual([]);
    const audit = await app.ctx.store.listAudit({ tenantId: 'acme', event: 'route.refused' });
    expect(audit.map((e) => e.detail?.reason)).toEqual(['self_target', 'unknown_target', 'cross_tenant']);
    const metrics = await (await fetch(`${app.url}/metrics`)).text();
    expect(metrics).toMatch(/hub_broker_routing_refusals_total\{reason="cross_tenant"[^}]*\} 1/);
    await a.close();
  });

  it('refuses a change stamped beyond its clock plus the skew limit, stores nothing, counts and audits it', async () => {
    const a = await open('acme', 'a');
    for (const hlc of ['7fffffffffffffff', encodeHlc({ wall: Date.now() + 3_600_000, logical: 0 })]) {
      const id = a.id();
      const c = { ...change('a', 4000), hlc };
      a.send({ type: 'sync.batch', id, batch_id: `ahead-${hlc}`, changes: [c] });
      const e = await a.next('error', (f) => f.ref === id);
      expect(e).toMatchObject({ code: 'clock_ahead' });
      expect(e.message).toContain(`changes.0.hlc: ${hlc} is`);
    }
    const { rows } = await app.ctx.pool.query(`SELECT 1 FROM tenant_acme.log WHERE origin = 'a' AND origin_seq = 4000`);
    expect(rows).toEqual([]);
    const audit = await app.ctx.store.listAudit({ tenantId: 'acme', event: 'route.refused' });
    expect(audit.filter((x) => x.detail?.reason === 'clock_ahead')).toHaveLength(2);
    expect(await (await fetch(`${app.url}/metrics`)).text()).toMatch(/hub_broker_routing_refusals_total\{reason="clock_ahead"[^}]*\} 2/);
    // A change stamped now still goes through on the same connection.
    a.nextSeq = 4001;
    expect((await a.append('a', 1)).offsets).toHaveLength(1);
    await a.close();
  });

  it('refuses changes whose origin is not the sending branch, and text that cannot be stored', async () => {
    const a = await open('acme', 'a');
    a.send({ type: 'sync.batch', id: 'f1', batch_id: 'forged', changes: [change('b', 99_999)] });
    expect(await a.next('error', (e) => e.ref === 'f1')).toMatchObject({ code: 'forged_origin' });
    const { rows } = await app.ctx.pool.query(`SELECT 1 FROM tenant_acme.log WHERE origin = 'b' AND origin_seq = 99999`);
    expect(rows).toEqual([]);
    // Text PostgreSQL cannot store is refused before it reaches the log.
    a.send({ type: 'sync.batch', id: 'n1', batch_id: 'nul', changes: [change('a', 99_998, { row: { id: '1', name: 'x\u0000y' } })] });
    expect(await a.next('error', (e) => e.ref === 'n1')).toMatchObject({ code: 'invalid_frame' });
    const nul = await app.ctx.pool.query(`SELECT 1 FROM tenant_acme.log WHERE origin = 'a' AND origin_seq = 99998`);
    expect(nul.rows).toEqual([]);
    await a.close();
  });

  it('replaces an older connection of the same branch (4009)', async () => {
    const first = await open('acme', 'c');
    const second = await open('acme', 'c');
    expect((await first.closed).code).toBe(4009);
    expect(second.closedWith).toBeUndefined();
    await second.close();
    // The gauge counts each open connection once, replaced ones included.
    await expect.poll(async () => /hub_broker_connections_active\{tenant="acme"[^}]*\} (\d+)/.exec(await (await fetch(`${app.url}/metrics`)).text())?.[1]).toBe('0');
  });

  it('answers /health, /ready and /metrics', async () => {
    expect((await fetch(`${app.url}/health`)).status).toBe(200);
    const ready = await fetch(`${app.url}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready', checks: { postgres: { ok: true }, engine: { ok: true } } });
    const m = await fetch(`${app.url}/metrics`, { headers: { 'accept-encoding': 'gzip' } });
    expect(m.headers.get('content-encoding')).toBe('gzip');
    const text = await m.text();
    for (const name of ['connections_active', 'frames_in_total', 'changes_in_total', 'append_duration_seconds', 'delivery_latency_seconds']) {
      expect(text).toContain(`hub_broker_${name}`);
    }
    expect(text).toContain('process_cpu_user_seconds_total');
  });
});
