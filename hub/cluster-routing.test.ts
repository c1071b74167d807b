/**
 * Routing across hub instances on one Redis: only an instance holding a receiver of the entries
 * is sent them; the others get the range alone, and their connections move past it without
 * reading the log.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Change } from '../protocol/index.js';
import { useTestDatabase } from '../test/support/pg.js';
import { testRedisUrl, useRedisPrefix } from '../test/support/redis.js';
import type { HubApp } from './app.js';
import type { EntriesMessage, InstanceMessage } from './engine/types.js';
import { change, seedBranch, startTestHub, TestAgent, tokenFor, wsUrl } from './testing/harness.js';

describe('routes across three hub instances', () => {
  const db = useTestDatabase('cluster_routing');
  const prefix = useRedisPrefix('cluster_routing');
  const keys = new Map<string, string>();
  const apps: HubApp[] = [];
  const heard = new Map<HubApp, EntriesMessage[]>();

  const start = async (): Promise<HubApp> => {
    const app = await startTestHub(db.url, { redisUrl: testRedisUrl, redisPrefix: prefix, pollIntervalMs: 60_000, probeIntervalMs: 200 });
    apps.push(app);
    const seen: EntriesMessage[] = [];
    heard.set(app, seen);
    // Records what other instances send this one, then handles it as usual.
    const receive = app.ctx.fanout.receive.bind(app.ctx.fanout);
    app.ctx.fanout.receive = (m: InstanceMessage) => {
      if (m.kind === 'entries') seen.push(m);
      receive(m);
    };
    return app;
  };
  const open = async (app: HubApp, branch: string) => TestAgent.open(wsUrl(app), await tokenFor(app.url, 'chain', branch, keys.get(branch) as string));

  let a: HubApp;
  let b: HubApp;
  let c: HubApp;

  beforeAll(async () => {
    a = await start();
    b = await start();
    c = await start();
    const store = a.ctx.store;
    for (const id of ['hq', 's1', 's2']) keys.set(id, await seedBranch(store, 'chain', id));
    await store.setBranchRouting('chain', 'hq', { groups: ['hq'] });
    await store.setBranchRouting('chain', 's1', { groups: ['store'], attributes: { store_id: '1' } });
    await store.setBranchRouting('chain', 's2', { groups: ['store'], attributes: { store_id: '2' } });
    await store.updateTenant('chain', {
      routes: [
        { name: 'up', tables: ['public.item'], from: ['store'], to: ['hq'] },
        { name: 'down', tables: ['public.item'], from: ['hq'], to: ['store'], filter: 'store_id = branch.store_id' },
      ],
    });
  });
  afterAll(async () => {
    for (const app of apps) await app.stop().catch(() => undefined);
  });

  it('sends the entries only to the instance holding their receiver, and the range alone to the others', async () => {
    for (const app of [a, b, c]) await expect.poll(async () => (await fetch(`${app.url}/ready`)).status).toBe(200);
    const hq = await open(a, 'hq');
    const s1 = await open(b, 's1');
    const s2 = await open(c, 's2');
    const rows: Change[] = [1, 2].map((n) => change('hq', n, { pk: { id: String(n) }, row: { id: String(n), store_id: '1' } }));
    hq.send({ type: 'sync.batch', id: 'r1', batch_id: 'r1', changes: rows });
    const ack = await hq.next('sync.ack', (x) => x.batch_id === 'r1');
    const got = await s1.next('sync.deliver');
    expect(got.entries.map((e) => e[0])).toEqual(ack.offsets);

    const last = ack.offsets[ack.offsets.length - 1] as number;
    await expect.poll(() => heard.get(c)?.find((m) => m.last === last)).toBeDefined();
    const toC = heard.get(c)?.find((m) => m.last === last) as EntriesMessage;
    expect(toC.entries).toBeUndefined();
    expect(toC.receivers).toEqual([]);
    expect(heard.get(b)?.find((m) => m.last === last)?.entries?.map((e) => e[0])).toEqual(ack.offsets);
    // s2 moved past the range live, without reading the log, and received nothing.
    await expect.poll(() => c.ctx.registry.get('chain', 's2')?.info()).toMatchObject({ mode: 'live', scanned: last });
    expect(s2.received('sync.deliver')).toEqual([]);

    // A sale of s2 goes to hq only; s1 (on b) hears the range alone.
    const { batchId } = s2.sendChanges('s2', 1);
    const up = await s2.next('sync.ack', (x) => x.batch_id === batchId);
    expect((await hq.next('sync.deliver')).entries.map((e) => e[0])).toEqual(up.offsets);
    await expect.poll(() => heard.get(b)?.find((m) => m.last === up.offsets[0])).toMatchObject({ receivers: [] });
    expect(s1.received('sync.deliver')).toHaveLength(1);
    for (const x of [hq, s1, s2]) await x.close();
  });
});
