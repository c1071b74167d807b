/**
 * A busy tenant sends a branch one small delivery per batch it receives. Deliveries that queue up
 * while the agent applies one are applied together, in one transaction each time, so a slow
 * apply does not cap the branch at a handful of rows per transaction; order and every row stay.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { HubApp } from '../hub/app.js';
import { change, seedBranch, startTestHub, TestAgent, tokenFor, wsUrl } from '../hub/testing/harness.js';
import { useTestDatabase } from '../test/support/pg.js';
import type { AgentService } from './service.js';
import { TENANT, type TestBranch } from './testing/branches.js';
import { openItemBranch, startItemAgent } from './testing/hub-agent.js';

const hubDb = useTestDatabase('coalesce_hub');
const branchDb = useTestDatabase('coalesce_branch');
let hub: HubApp;
let branch: TestBranch;
let agent: AgentService | undefined;
let sender: TestAgent | undefined;
const BATCHES = 150;

beforeAll(async () => {
  // Flow control off for this test: the hub pushes every batch as its own delivery at once.
  hub = await startTestHub(hubDb.url, { maxUnappliedEntries: 1_000_000, branchRate: undefined, tenantRate: undefined });
  let apiKey: string;
  ({ branch, apiKey } = await openItemBranch(hub, branchDb.url));
  const senderKey = await seedBranch(hub.ctx.store, TENANT, 'b2');
  // Every apply transaction takes a while (a statement-level trigger sleeps), so deliveries queue.
  await branch.pool.query(`
    CREATE FUNCTION public.slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.02); RETURN NULL; END $$;
    CREATE TRIGGER slow AFTER INSERT OR UPDATE ON public.item FOR EACH STATEMENT EXECUTE FUNCTION public.slow();`);
  agent = await startItemAgent(hub, branch, apiKey);
  sender = await TestAgent.open(wsUrl(hub), await tokenFor(hub.url, TENANT, 'b2', senderKey), { bootstrap: false });
}, 60_000);

afterAll(async () => {
  await sender?.close();
  await agent?.stop();
  await branch?.close();
  await hub?.stop();
});

it('applies deliveries queued behind a slow apply together, in order, losing none', async () => {
  const s = sender as TestAgent;
  // Row 1 is written by every batch: the last write must win, which it does only in log order.
  for (let i = 1; i <= BATCHES; i++) {
    s.send({ type: 'sync.batch', id: s.id(), batch_id: `b${i}`, changes: [change('b2', 2 * i - 1, { op: 'insert', pk: { id: String(1000 + i) }, row: { id: String(1000 + i), name: `n${i}` } }), change('b2', 2 * i, { pk: { id: '1' }, row: { id: '1', name: `last ${i}` } })] });
  }
  await expect.poll(() => s.received('sync.ack').length, { timeout: 30_000 }).toBe(BATCHES);
  await expect
    .poll(async () => (await branch.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM item`)).rows[0]?.n, { timeout: 60_000 })
    .toBe(BATCHES + 1);
  expect((await branch.pool.query(`SELECT name FROM item WHERE id = 1`)).rows).toEqual([{ name: `last ${BATCHES}` }]);
  // Far fewer apply transactions than deliveries.
  const applies = (await (agent as AgentService).metrics.applySeconds.get()).values.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0;
  expect(applies).toBeGreaterThan(0);
  expect(applies).toBeLessThan(BATCHES / 3);
});
