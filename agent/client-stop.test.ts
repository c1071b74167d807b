/**
 * Stopping an agent that is still connecting: the token request is in flight when `stop()` is
 * called. Found by the demo, whose Ctrl-C can come at any moment.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestHub, seedBranch } from '../hub/testing/harness.js';
import type { HubApp } from '../hub/app.js';
import { useTestDatabase } from '../test/support/pg.js';
import { loadConfig } from './config.js';
import { startAgent } from './service.js';
import { openBranch, TENANT, type TestBranch } from './testing/branches.js';

const hubDb = useTestDatabase('stop_hub');
const branchDb = useTestDatabase('stop_branch');
let hub: HubApp;
let branch: TestBranch;
let apiKey: string;

beforeAll(async () => {
  hub = await startTestHub(hubDb.url);
  apiKey = await seedBranch(hub.ctx.store, TENANT, 'b1');
  branch = await openBranch(branchDb.url, 'b1', 'CREATE TABLE public.item (id int PRIMARY KEY, name text)', [{ name: 'public.item' }]);
});

afterAll(async () => {
  await branch?.close();
  await hub?.stop();
});

it('an agent stopped while it is still getting its token stops without connecting', async () => {
  const config = loadConfig({
    env: { HUB_URL: hub.url, TENANT_ID: TENANT, BRANCH_ID: 'b1', API_KEY: apiKey, DATABASE_URL: branchDb.url, AGENT_TABLES: 'public.item', LOG_LEVEL: 'silent' },
  });
  const agent = await startAgent(config);
  // startAgent has begun the token request; it cannot have been answered yet.
  const stopped = await Promise.race([agent.stop().then(() => true), new Promise((r) => setTimeout(() => r(false), 5000))]);
  expect(stopped).toBe(true);
  await agent.done;
  // The token answer arrived after stop(): no socket was opened with it.
  await new Promise((r) => setTimeout(r, 300));
  expect([...hub.ctx.registry.all()]).toHaveLength(0);
});
