import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../test/support/pg.js';
import type { HubApp } from './app.js';
import * as log from './log.js';
import { change, seedBranch, startTestHub, TestAgent, tokenFor, wsUrl } from './testing/harness.js';

/** The periodic poll of the log head, which catches lost notifications, here every 250 ms. */
describe('polling the log head', () => {
  const db = useTestDatabase('headpoll');
  let app: HubApp;
  const keys = new Map<string, string>();

  const open = async (branch: string) => TestAgent.open(wsUrl(app), await tokenFor(app.url, 'acme', branch, keys.get(branch) as string));
  const logDeliveries = async () =>
    (await app.ctx.metrics.deliverySeconds.get()).values.find((v) => v.metricName?.endsWith('_count') && v.labels.path === 'log')?.value ?? 0;

  beforeAll(async () => {
    app = await startTestHub(db.url, { pollIntervalMs: 250 });
    for (const b of ['w', 'r']) keys.set(b, await seedBranch(app.ctx.store, 'acme', b));
  });
  afterAll(() => app.stop());

  it('leaves a receiver live while a busy writer appends through many polls', async () => {
    const w = await open('w');
    const r = await open('r');
    const before = await logDeliveries();
    // Notifications take 20 ms here, as through a busy pub/sub: polls keep finding appends that
    // committed and are not announced yet. (A stand-in for latency, in order, nothing lost.)
    const fanout = app.ctx.fanout;
    const publish = fanout.publish.bind(fanout);
    fanout.publish = (m) => {
      setTimeout(() => void publish(m), 20);
      return Promise.resolve();
    };
    const acked: number[] = [];
    try {
      // Six polls or so; the 230 ms to spare cover a loaded machine's event-loop delays.
      for (const until = Date.now() + 1500; Date.now() < until; ) {
        const ids = Array.from({ length: 4 }, () => w.sendChanges('w', 10).batchId);
        for (const id of ids) acked.push(...(await w.next('sync.ack', (f) => f.batch_id === id)).offsets);
        // Below the branch's default rate limit (500 frames/s), and still an append every few ms.
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    } finally {
      fanout.publish = publish;
    }
    await expect.poll(() => r.delivered().length, { timeout: 10_000 }).toBe(acked.length);
    expect(r.delivered().map((e) => e[0])).toEqual(acked);
    // Everything came live: none of it was read back from the log.
    expect(await logDeliveries()).toBe(before);
    await w.close();
    await r.close();
  });

  it('delivers an entry whose notification never came at a later poll', async () => {
    const r = await open('r');
    // Live first, so that only a poll can find the entry.
    await expect.poll(() => app.ctx.registry.get('acme', 'r')?.delivery.mode).toBe('live');
    // Appended behind the hub's back: nobody announces it.
    const [entry] = (await log.append(app.ctx.pool, 'acme', 'tenant_acme', 'w', [change('w', 1_000_000)], null)).offsets;
    await expect.poll(() => r.delivered().map((e) => e[0]), { timeout: 5000 }).toContain(entry);
    await r.close();
  });
});
