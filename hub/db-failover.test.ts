/**
 * The hub database restarting under a hub (issue 18): a PostgreSQL cluster of its own, on its
 * own port (test/support/pg-cluster.ts), restarted with `pg_ctl restart -m fast` as a failover
 * or a restarted primary would drop every connection, while a branch writes: appends in flight
 * fail with "resend later", the agent's resend is deduplicated, the pool and the control channel
 * reconnect, `/ready` is false meanwhile and true after, and the hub process stays up.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type Cluster } from '../test/support/pg-cluster.js';
import type { HubApp } from './app.js';
import type { Change } from '../protocol/index.js';
import { change, seedBranch, startTestHub, TestAgent, tokenFor, wsUrl } from './testing/harness.js';

describe('the hub database restarting under a hub', () => {
  let cluster: Cluster;
  let app: HubApp;
  let x: TestAgent;
  let y: TestAgent;

  beforeAll(async () => {
    cluster = await startCluster('hubdb');
    const url = await cluster.createDatabase('hub');
    app = await startTestHub(url, { pollIntervalMs: 500 });
    x = await TestAgent.open(wsUrl(app), await tokenFor(app.url, 'acme', 'x', await seedBranch(app.ctx.store, 'acme', 'x')));
    y = await TestAgent.open(wsUrl(app), await tokenFor(app.url, 'acme', 'y', await seedBranch(app.ctx.store, 'acme', 'y')));
  }, 60_000);

  afterAll(async () => {
    await x?.close().catch(() => undefined);
    await y?.close().catch(() => undefined);
    await app?.stop().catch(() => undefined);
    cluster?.stop();
  });

  /** Sends the changes until the hub acknowledges them, resending on "append failed", as an agent does. */
  const appendUntilAcked = async (changes: Change[]): Promise<number[]> => {
    for (let attempt = 1; ; attempt++) {
      const id = x.id();
      const batchId = `${changes[0]?.seq}-${attempt}`;
      x.send({ type: 'sync.batch', id, batch_id: batchId, changes });
      const f = await x.next('sync.ack', (a) => a.batch_id === batchId, 15_000).catch(() => null);
      if (f) return f.offsets;
      expect(x.received('error').some((e) => e.ref === id && e.message.includes('resend later'))).toBe(true);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  it('fails appends cleanly while the database is away, reconnects, and loses or doubles nothing', async () => {
    const first = await x.append('x', 3);
    await expect.poll(() => y.delivered().map(([o]) => o), { timeout: 10_000 }).toEqual(first.offsets);

    const readiness: boolean[] = [];
    let watching = true;
    const watch = (async () => {
      while (watching) {
        readiness.push((await fetch(`${app.url}/ready`)).ok);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const restarted = cluster.restart();
    const acked = [...first.offsets];
    let seq = 3;
    for (let i = 0; i < 30; i++) {
      const changes = [change('x', ++seq), change('x', ++seq)];
      acked.push(...(await appendUntilAcked(changes)));
      await new Promise((r) => setTimeout(r, 30));
    }
    await restarted;
    await expect.poll(async () => (await fetch(`${app.url}/ready`)).ok, { timeout: 30_000 }).toBe(true);
    watching = false;
    await watch;

    // Some appends failed and were sent again; each change is in the log once, and delivered once.
    expect(x.received('error').filter((e) => e.message.includes('resend later')).length).toBeGreaterThan(0);
    expect(readiness).toContain(false);
    expect(new Set(acked).size).toBe(acked.length);
    await expect.poll(() => y.delivered().map(([o]) => o).sort((a, b) => a - b), { timeout: 20_000 }).toEqual([...acked].sort((a, b) => a - b));
    const inLog = await app.ctx.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM tenant_acme.log WHERE origin = 'x'`);
    expect(inLog.rows[0]?.n).toBe(3 + 60);
    // Nobody was disconnected, and the hub goes on.
    expect(x.closedWith).toBeUndefined();
    expect(y.closedWith).toBeUndefined();
    x.nextSeq = seq + 1;
    const after = await x.append('x', 1);
    await expect.poll(() => y.delivered().length, { timeout: 10_000 }).toBe(acked.length + after.offsets.length);
  });
});
