/**
 * For agent tests against a real hub in this process: a branch whose synced table is
 * `public.item`, registered at the hub, and `hub-broker agent` (agent/service.ts) for it.
 */
import type { HubApp } from '../../hub/app.js';
import { loadConfig } from '../config.js';
import { startAgent, type AgentService } from '../service.js';
import { seedBranch } from '../../hub/testing/harness.js';
import { openBranch, TENANT, type TestBranch } from './branches.js';

/** Creates `public.item` in the database at `url`, installs hubsync for it, and registers branch `id` at the hub. */
export async function openItemBranch(hub: HubApp, url: string, id = 'b1'): Promise<{ branch: TestBranch; apiKey: string }> {
  const apiKey = await seedBranch(hub.ctx.store, TENANT, id);
  const branch = await openBranch(url, id, 'CREATE TABLE public.item (id int PRIMARY KEY, name text)', [{ name: 'public.item' }]);
  return { branch, apiKey };
}

/** Starts the agent of `branch` and waits until the hub holds its connection. */
export async function startItemAgent(hub: HubApp, branch: TestBranch, apiKey: string, env: Record<string, string> = {}): Promise<AgentService> {
  const config = loadConfig({
    env: {
      HUB_URL: hub.url,
      TENANT_ID: TENANT,
      BRANCH_ID: branch.id,
      API_KEY: apiKey,
      DATABASE_URL: branch.url,
      AGENT_TABLES: 'public.item',
      AGENT_POLL_MS: '200',
      LOG_LEVEL: 'silent',
      ...env,
    },
  });
  const agent = await startAgent(config);
  for (let i = 0; i < 150 && !hub.ctx.registry.get(TENANT, branch.id); i++) await new Promise((r) => setTimeout(r, 100));
  return agent;
}
