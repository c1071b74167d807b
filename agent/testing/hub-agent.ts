/**
 * For agent tests against a real hub in this process: starts `hub-broker agent` (agent/service.ts)
 * for a branch whose synced table is `public.item`, and waits until the hub holds its connection.
 */
import type { HubApp } from '../../hub/app.js';
import { loadConfig } from '../config.js';
import { startAgent, type AgentService } from '../service.js';
import { TENANT, type TestBranch } from './branches.js';

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
