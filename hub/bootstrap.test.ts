import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Change } from '../protocol/index.js';
import { useTestDatabase } from '../test/support/pg.js';
import type { HubApp } from './app.js';
import * as log from './log.js';
import { change, seedBranch, startTestHub, TestAgent, tokenFor, wsUrl } from './testing/harness.js';

const T = 'acme';
const S = 'tenant_acme';

describe('compaction, snapshots and retention', () => {
  const db = useTestDatabase('bootstrap');
  let app: HubApp;
  const keys = new Map<string, string>();
  const open = async (branch: string, options: { bootstrap?: boolean } = {}) =>
    TestAgent.open(wsUrl(app), await tokenFor(app.url, T, branch, keys.get(branch) as string), options);
  const send = async (agent: TestAgent, changes: Change[]) => {
    const id = agent.id();
    agent.send({ type: 'sync.batch', id, batch_id: id, changes });
    return (await agent.next('sync.ack', (a) => a.batch_id === id)).offsets;
  };

  beforeAll(async () => {
    app = await startTestHub(db.url, {
      snapshotChunkRows: 2,
      snapshotWindow: 2,
      retentionMaxEntries: 0,
      maintenanceIntervalMs: 3_600_000,
      branchRate: undefined,
      tenantRate: undefined,
    });
    for (const b of ['a', 'b', 'fresh', 'slow', 'late', 'p1', 'p2']) keys.set(b, await seedBranch(app.ctx.store, T, b));
  });
  afterAll(() => app.stop());

  it('serves a snapshot of the maximal versions in acknowledged chunks, then the log after its offset', async () => {
    const a = await open('a');
    const b = await open('b');
    // Row 1: a writes twice (the second dominates). Row 2: a and b write concurrently (both kept).
    // Rows 3-5: one version each. A targeted entry is not part of the state.
    await send(a, [change('a', 1, { pk: { id: '1' }, vv: { a: 1 } })]);
    await send(a, [change('a', 2, { pk: { id: '1' }, vv: { a: 2 } })]);
    await send(a, [change('a', 3, { pk: { id: '2' }, vv: { a: 1 } })]);
    await send(b, [change('b', 1, { pk: { id: '2' }, vv: { b: 1 } })]);
    await send(b, [3, 4, 5].map((i) => change('b', i - 1, { pk: { id: String(i) }, vv: { b: i - 1 }, tx: `t${i}`, tx_end: i === 5 })));
    await send(a, [change('a', 4, { pk: { id: '9' }, vv: { a: 9 } })].map((c) => c)).then(() => undefined);
    const id = a.id();
    a.send({ type: 'sync.batch', id, batch_id: id, changes: [change('a', 5, { pk: { id: 'private' } })], to: 'b' });
    const targeted = (await a.next('sync.ack', (x) => x.batch_id === id)).offsets[0] as number;

    const fresh = await open('fresh', { bootstrap: false });
    expect(fresh.hello.bootstrap).toBe(true);
    fresh.send({ type: 'snapshot.request', id: 's1' });
    const begin = await fresh.next('snapshot.begin');
    expect(begin.offset).toBeGreaterThanOrEqual(targeted);
    expect(begin.total_rows).toBe(7); // 1 + 2 + 3 + 1
    // Flow control: two chunks, then nothing until acknowledged.
    const c0 = await fresh.next('snapshot.chunk');
    const c1 = await fresh.next('snapshot.chunk');
    await new Promise((r) => setTimeout(r, 200));
    expect(fresh.received('snapshot.chunk')).toHaveLength(2);
    const rows: Change[] = [...c0.rows, ...c1.rows];
    fresh.send({ type: 'snapshot.ack', id: fresh.id(), snapshot_id: begin.snapshot_id, seq: 0 });
    fresh.send({ type: 'snapshot.ack', id: fresh.id(), snapshot_id: begin.snapshot_id, seq: 1 });
    for (;;) {
      const next = await fresh.nextOf(['snapshot.chunk', 'snapshot.end']);
      if (next.type === 'snapshot.end') {
        expect(next).toMatchObject({ offset: begin.offset, rows: 7 });
        break;
      }
      rows.push(...next.rows);
      fresh.send({ type: 'snapshot.ack', id: fresh.id(), snapshot_id: begin.snapshot_id, seq: next.seq });
    }
    const byId = (id: string) => rows.filter((r) => r.pk.id === id).map((r) => `${r.origin}${r.seq}`).sort();
    expect(byId('1')).toEqual(['a2']);
    expect(byId('2')).toEqual(['a3', 'b1']);
    expect(byId('private')).toEqual([]);
    expect(rows.every((r) => r.tx_end === undefined)).toBe(true);
    // The cursor is at the snapshot's offset and the log continues after it.
    await expect.poll(async () => (await log.branchLag(app.ctx.pool, S, 'fresh'))?.cursor).toBe(begin.offset);
    const after = await send(a, [change('a', 6)]);
    const d = await fresh.next('sync.deliver', (x) => x.entries.some((e) => e[0] === after[0]));
    expect(d.entries.every((e) => e[0] > begin.offset)).toBe(true);
    for (const x of [a, b, fresh]) await x.close();
  });

  it('serves a limited number of snapshots at once; the next one waits for a free slot', async () => {
    const one = await startTestHub(db.url, { snapshotConcurrency: 1, snapshotChunkRows: 2, snapshotWindow: 1 });
    const connect = async (b: string) =>
      TestAgent.open(wsUrl(one), await tokenFor(one.url, T, b, keys.get(b) as string), { bootstrap: false });
    const p1 = await connect('p1');
    const p2 = await connect('p2');
    p1.send({ type: 'snapshot.request', id: 'q1' });
    const begin = await p1.next('snapshot.begin');
    await p1.next('snapshot.chunk');
    p2.send({ type: 'snapshot.request', id: 'q2' });
    await new Promise((r) => setTimeout(r, 200));
    expect(p2.received('snapshot.begin')).toEqual([]);
    // p1 acknowledges its chunks and finishes; only then does p2's snapshot start.
    let seq = 0;
    for (;;) {
      p1.send({ type: 'snapshot.ack', id: p1.id(), snapshot_id: begin.snapshot_id, seq: seq++ });
      const f = await p1.nextOf(['snapshot.chunk', 'snapshot.end']);
      if (f.type === 'snapshot.end') break;
    }
    expect(p2.received('snapshot.begin')).toEqual([]);
    expect(await p2.takeSnapshotAfterRequest()).toBeGreaterThan(0);
    await p1.close();
    await p2.close();
    await one.stop();
  });

  it('prunes entries below every branch cursor, and only those', async () => {
    const { head } = await log.cursors(app.ctx.pool, S);
    // Every branch applied everything but "slow" and "late", which are at 0.
    for (const branch of ['a', 'b', 'fresh']) await log.setCursor(app.ctx.pool, S, branch, head);
    await log.setCursor(app.ctx.pool, S, 'slow', 3);
    await log.setCursor(app.ctx.pool, S, 'late', 3);
    await app.maintain();
    const after = await log.cursors(app.ctx.pool, S);
    expect(after.prunedUpto).toBe(3);
    expect(after.compactedUpto).toBe(head);
    const { rows } = await app.ctx.pool.query(`SELECT min(pos)::int AS m FROM ${S}.log`);
    expect(rows[0].m).toBe(4);
    // The same pass refreshed the depth and lag gauges.
    const text = await (await fetch(`${app.url}/metrics`)).text();
    expect(text).toMatch(new RegExp(`hub_broker_branch_lag\\{tenant="acme",branch="slow"[^}]*\\} ${head - 3}`));
    expect(text).toMatch(new RegExp(`hub_broker_log_depth\\{tenant="acme"[^}]*\\} ${head - 3}`));
  });

  it('drops the lag gauge of a deleted branch and both gauges of a deleted tenant at the next pass', async () => {
    await app.ctx.store.createTenant('gone', {});
    await seedBranch(app.ctx.store, 'gone', 'g1');
    await seedBranch(app.ctx.store, T, 'doomed');
    await app.maintain();
    const metrics = async () => (await fetch(`${app.url}/metrics`)).text();
    expect(await metrics()).toMatch(/hub_broker_branch_lag\{tenant="acme",branch="doomed"/);
    expect(await metrics()).toMatch(/hub_broker_log_depth\{tenant="gone"/);

    await app.ctx.store.deleteBranch(T, 'doomed');
    await app.ctx.store.deleteTenant('gone', 'delete');
    await app.maintain();
    const text = await metrics();
    expect(text).not.toMatch(/branch="doomed"/);
    expect(text).not.toMatch(/tenant="gone"[^}]*\} /);
    // The others stay.
    expect(text).toMatch(/hub_broker_branch_lag\{tenant="acme",branch="slow"/);
    expect(text).toMatch(/hub_broker_log_depth\{tenant="acme"/);
  });

  it('tells a branch that fell behind the maximum log size to bootstrap, while connected and on connect', async () => {
    const bounded = await startTestHub(db.url, {
      retentionMaxEntries: 2,
      maintenanceIntervalMs: 3_600_000,
      maxUnappliedEntries: 2,
      deliveryPageEntries: 2,
    });
    const a = await open('a');
    a.nextSeq = 100;
    await a.append('a', 3);
    // "slow" reads two entries from its cursor and, not applying them, is paused.
    const slow = await TestAgent.open(wsUrl(bounded), await tokenFor(bounded.url, T, 'slow', keys.get('slow') as string));
    expect(slow.hello.bootstrap).toBe(false);
    await expect.poll(() => bounded.ctx.registry.get(T, 'slow')?.info().mode).toBe('paused');
    // The log is bounded to 2 entries, past the slow branch's position.
    await bounded.maintain();
    const { prunedUpto, head } = await log.cursors(app.ctx.pool, S);
    expect(prunedUpto).toBe(head - 2);
    // When it applies and resumes, the next page is gone: it is told to bootstrap.
    slow.applied(slow.delivered().at(-1)?.[0] as number);
    expect(await slow.next('snapshot.required')).toMatchObject({ reason: expect.stringMatching(/below the oldest retained offset/) });
    const late = await open('late');
    expect(late.hello.bootstrap).toBe(true);
    for (const x of [a, late, slow]) await x.close();
    await bounded.stop();
  });
});

describe('log pages', () => {
  const row = (pos: number, origin: string, tx: string, txEnd?: boolean) => ({
    pos,
    change: change(origin, pos, { tx, tx_end: txEnd }),
    bytes: 100,
    at: 0,
  });

  it('never splits a source transaction', () => {
    const rows = [row(1, 'a', 't1', true), row(2, 'a', 't2'), row(3, 'b', 'u1', true), row(4, 'a', 't2')];
    // Rows 2 and 4 are one transaction of a, so a full page ends after row 1... or after row 3 is not allowed either.
    expect(log.cutPage(rows, true, 1e9)).toEqual({ keep: 3 });
    expect(log.cutPage([row(1, 'a', 't1'), row(2, 'a', 't1')], true, 1e9)).toEqual({ extend: true });
    expect(log.cutPage([row(1, 'a', 't1'), row(2, 'a', 't1')], false, 1e9)).toEqual({ keep: 2 });
    expect(log.cutPage([row(1, 'a', 't1', true), row(2, 'a', 't2', true)], true, 150)).toEqual({ keep: 1 });
  });
});
