/**
 * A batch that takes all there is (the batch size left nothing over) is not sent while another
 * waits for its ack: what is captured meanwhile goes out together once the ack comes. Here the hub's append is held back
 * by taking the tenant's append lock, so the first batch stays unacknowledged for as long as
 * the test wants; the agent polls its outbox every 50 ms meanwhile.
 */
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { HubApp } from '../hub/app.js';
import { appendLockKey } from '../hub/log.js';
import { startTestHub } from '../hub/testing/harness.js';
import { useTestDatabase } from '../test/support/pg.js';
import type { AgentService } from './service.js';
import { TENANT, type TestBranch } from './testing/branches.js';
import { openItemBranch, startItemAgent } from './testing/hub-agent.js';

const hubDb = useTestDatabase('send_coalesce_hub');
const branchDb = useTestDatabase('send_coalesce_branch');
let hub: HubApp;
let branch: TestBranch;
let agent: AgentService | undefined;

beforeAll(async () => {
  hub = await startTestHub(hubDb.url);
  let apiKey: string;
  ({ branch, apiKey } = await openItemBranch(hub, branchDb.url));
  agent = await startItemAgent(hub, branch, apiKey, { AGENT_POLL_MS: '50' });
}, 60_000);

afterAll(async () => {
  await agent?.stop();
  await branch?.close();
  await hub?.stop();
});

const sent = async (): Promise<{ batches: number; changes: number }> => {
  const m = (agent as AgentService).metrics;
  return { batches: (await m.batchesSent.get()).values[0]?.value ?? 0, changes: (await m.changesSent.get()).values[0]?.value ?? 0 };
};

it('holds small batches while one is in flight and sends what gathered in one batch after the ack', async () => {
  const lock = new pg.Client({ connectionString: hubDb.url });
  await lock.connect();
  try {
    await lock.query(`SELECT pg_advisory_lock(hashtextextended($1, 7316))`, [appendLockKey(TENANT)]);
    await branch.pool.query(`INSERT INTO item VALUES (1, 'first')`);
    await expect.poll(sent).toEqual({ batches: 1, changes: 1 });
    // Ten single-row transactions while the first batch waits for its ack.
    for (let i = 2; i <= 11; i++) await branch.pool.query(`INSERT INTO item VALUES ($1, 'later')`, [i]);
    await new Promise((r) => setTimeout(r, 500));
    expect(await sent()).toEqual({ batches: 1, changes: 1 });
    await lock.query(`SELECT pg_advisory_unlock(hashtextextended($1, 7316))`, [appendLockKey(TENANT)]);
    await expect.poll(async () => (await branch.outbox.pending())).toBe(0);
    expect(await sent()).toEqual({ batches: 2, changes: 11 });
  } finally {
    await lock.end();
  }
});
