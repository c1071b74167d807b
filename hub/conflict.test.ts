import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Conflict } from '../protocol/index.js';
import { useTestDatabase } from '../test/support/pg.js';
import type { HubApp } from './app.js';
import { seedBranch, startTestHub, TestAgent, tokenFor, wsUrl } from './testing/harness.js';

function conflict(winner: string, loser: string): Conflict {
  return {
    table: 'public.customer',
    pk: { id: '123' },
    strategy: 'last-write-wins',
    winner: { origin: winner, hlc: '0000018c00000001', vv: { [winner]: 2, [loser]: 1 }, deleted: false },
    loser: { origin: loser, hlc: '0000018c00000000', vv: { [loser]: 2 }, deleted: false },
    winner_row: { id: '123', email: 'new@example.com' },
    loser_row: { id: '123', email: 'old@example.com' },
    detected_at: '2026-11-27T00:00:00Z',
  };
}

describe('conflict reports', () => {
  const db = useTestDatabase('conflict');
  let app: HubApp;
  const keys = new Map<string, string>();
  const open = async (branch: string) => TestAgent.open(wsUrl(app), await tokenFor(app.url, 'acme', branch, keys.get(branch) as string));

  beforeAll(async () => {
    app = await startTestHub(db.url);
    for (const b of ['hq', 'store', 'other']) keys.set(b, await seedBranch(app.ctx.store, 'acme', b));
  });
  afterAll(() => app.stop());

  it('counts a report per tenant and table, audits it and forwards it to the branch whose write lost', async () => {
    const hq = await open('hq');
    const store = await open('store');
    const other = await open('other');
    hq.send({ type: 'conflict.report', id: 'c1', conflict: conflict('hq', 'store') });
    const notify = await store.next('conflict.notify');
    expect(notify).toMatchObject({ reported_by: 'hq', conflict: { table: 'public.customer', loser_row: { email: 'old@example.com' } } });
    const audit = await app.ctx.store.listAudit({ tenantId: 'acme', event: 'conflict.reported' });
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ branchId: 'hq', detail: { conflict: { pk: { id: '123' } } } });
    const text = await (await fetch(`${app.url}/metrics`)).text();
    expect(text).toMatch(/hub_broker_conflicts_total\{tenant="acme",table="public.customer",kind="concurrent"[^}]*\} 1/);
    // A branch reporting its own loss is not notified of it, and nobody else is either.
    store.send({ type: 'conflict.report', id: 'c2', conflict: conflict('hq', 'store') });
    await expect.poll(async () => (await app.ctx.store.listAudit({ tenantId: 'acme', event: 'conflict.reported' })).length).toBe(2);
    expect(other.received('conflict.notify')).toEqual([]);
    expect(store.received('conflict.notify')).toHaveLength(1);
    for (const x of [hq, store, other]) await x.close();
  });

  it('holds the notice for a branch that is offline and sends it, once, when it connects', async () => {
    await expect.poll(() => app.ctx.registry.get('acme', 'other')).toBeUndefined();
    const hq = await open('hq');
    hq.send({ type: 'conflict.report', id: 'c3', conflict: { ...conflict('hq', 'other'), pk: { id: '456' } } });
    await expect.poll(async () => (await app.ctx.store.listAudit({ tenantId: 'acme', event: 'conflict.reported' })).length).toBe(3);
    const other = await open('other');
    const notify = await other.next('conflict.notify');
    expect(notify).toMatchObject({ reported_by: 'hq', conflict: { pk: { id: '456' }, loser_row: { email: 'old@example.com' } } });
    await other.close();
    // Sent once: taken from the tenant schema, and the next connection gets nothing held.
    const { rows } = await app.ctx.pool.query(`SELECT count(*)::int AS n FROM tenant_acme.notices`);
    expect(rows[0].n).toBe(0);
    const again = await open('other');
    await new Promise((r) => setTimeout(r, 300));
    expect(again.received('conflict.notify')).toEqual([]);
    for (const x of [hq, again]) await x.close();
  });

  it('holds a notice that another instance forwarded for a branch no longer connected here', async () => {
    await expect.poll(() => app.ctx.registry.get('acme', 'store')).toBeUndefined();
    // What the engine hands over when another instance routed a notice here from a stale location.
    app.ctx.fanout.receive({ kind: 'conflict', tenant: 'acme', branch: 'store', frame: { type: 'conflict.notify', id: 'r1', reported_by: 'hq', conflict: { ...conflict('hq', 'store'), pk: { id: '789' } } } });
    const store = await open('store');
    expect(await store.next('conflict.notify')).toMatchObject({ id: 'r1', reported_by: 'hq', conflict: { pk: { id: '789' } } });
    await store.close();
  });

  it('sends a notice held while the branch was connecting, without waiting for its next connection', async () => {
    await expect.poll(() => app.ctx.registry.get('acme', 'store')).toBeUndefined();
    const store = await open('store');
    // As if the notice had found the branch away and was stored only after the branch's
    // connection read what was held: the hold itself must bring it over.
    app.ctx.fanout.onUndeliveredConflict('acme', 'store', { type: 'conflict.notify', id: 'r2', reported_by: 'hq', conflict: { ...conflict('hq', 'store'), pk: { id: '790' } } });
    expect(await store.next('conflict.notify')).toMatchObject({ id: 'r2', conflict: { pk: { id: '790' } } });
    const { rows } = await app.ctx.pool.query(`SELECT count(*)::int AS n FROM tenant_acme.notices`);
    expect(rows[0].n).toBe(0);
    await store.close();
  });

  it('keeps a huge report small: rows cut before they are audited, held or forwarded', async () => {
    const hq = await open('hq');
    const before = (await app.ctx.store.listAudit({ tenantId: 'acme', event: 'conflict.reported' })).length;
    const huge: Conflict = { ...conflict('hq', 'other'), pk: { id: '999' }, winner_row: { id: '999', doc: 'w'.repeat(400_000) }, loser_row: { id: '999', doc: 'l'.repeat(400_000) } };
    hq.send({ type: 'conflict.report', id: 'big', conflict: huge });
    await expect.poll(async () => (await app.ctx.store.listAudit({ tenantId: 'acme', event: 'conflict.reported' })).length).toBe(before + 1);
    const audit = await app.ctx.store.listAudit({ tenantId: 'acme', event: 'conflict.reported' });
    const stored = audit.find((a) => JSON.stringify(a.detail).includes('"999"'));
    expect(JSON.stringify(stored?.detail).length).toBeLessThan(20_000);
    expect(stored?.detail).toMatchObject({ conflict: { winner_row: { id: '999', doc: expect.stringMatching(/^w{256}… \[400002 bytes, cut by the hub\]$/) } } });
    // Held for the offline loser in the same cut form.
    const held = await app.ctx.pool.query<{ n: number }>(`SELECT max(length(frame::text))::int AS n FROM tenant_acme.notices WHERE branch_id = 'other'`);
    expect(held.rows[0]?.n).toBeLessThan(20_000);
    const text = await (await fetch(`${app.url}/metrics`)).text();
    expect(text).toMatch(/hub_broker_conflict_reports_cut_total\{tenant="acme"[^}]*\} 1/);
    await app.ctx.pool.query(`DELETE FROM tenant_acme.notices`);
    await hq.close();
  });

  it("writes at most its budget of a tenant's conflicts to the shared audit log, and still counts and forwards the rest", async () => {
    // A hub of its own, so that the budget (200 at once, then 20 a second) is this test's alone.
    const own = await startTestHub(db.url, { branchRate: undefined, tenantRate: undefined });
    try {
      const k = new Map<string, string>();
      for (const b of ['flood', 'loser']) k.set(b, await seedBranch(own.ctx.store, 'floody', b));
      const flood = await TestAgent.open(wsUrl(own), await tokenFor(own.url, 'floody', 'flood', k.get('flood') as string));
      const loser = await TestAgent.open(wsUrl(own), await tokenFor(own.url, 'floody', 'loser', k.get('loser') as string));
      for (let i = 0; i < 400; i++) flood.send({ type: 'conflict.report', id: `f${i}`, conflict: { ...conflict('flood', 'loser'), pk: { id: String(i) } } });
      await expect.poll(() => loser.received('conflict.notify').length, { timeout: 20_000 }).toBe(400);
      const audited = (await own.ctx.store.listAudit({ tenantId: 'floody', event: 'conflict.reported', limit: 1000 })).length;
      expect(audited).toBeGreaterThanOrEqual(200);
      expect(audited).toBeLessThan(400);
      const unaudited = (await own.ctx.metrics.conflictsUnaudited.get()).values.find((v) => v.labels.tenant === 'floody')?.value ?? 0;
      expect(audited + unaudited).toBe(400);
      const counted = (await own.ctx.metrics.conflicts.get()).values.find((v) => v.labels.tenant === 'floody')?.value ?? 0;
      expect(counted).toBe(400);
      await flood.close();
      await loser.close();
    } finally {
      await own.stop();
    }
  });
});
