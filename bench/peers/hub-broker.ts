/**
 * Hub-Broker as it is deployed: the hub as a child process on its own database (in the control
 * cluster), one `hub-broker agent` child process per database, default settings, full mesh.
 */
import type { ChildProcess } from 'node:child_process';
import pg from 'pg';
import { install } from '../../agent/install.js';
import { HubStore } from '../../hub/store/index.js';
import { TEST_ARGON2 } from '../../hub/testing/harness.js';
import { agentCommand, startAgentProcess } from '../lib/agent-process.js';
import { freePort, HubProcess, randomJwtKeys, sleep } from '../lib/hub-process.js';
import type { Peer, PeerRun, PeerSite } from './peer.js';
import { waitReplicating } from './probe.js';

const TENANT = 'peers';
const TABLE = 'public.peer_item';

export const hubBroker: Peer = {
  name: 'hub-broker',
  async setUp(site: PeerSite): Promise<PeerRun> {
    const hubDb = `hub_${site.runId}`;
    const hubUrl = await site.control.createDatabase(hubDb);
    const dbs = [
      { id: 'source', url: site.source.url },
      ...site.destinations.map((d, i) => ({ id: `dest-${i + 1}`, url: d.url })),
    ];
    const keys = new Map<string, string>();
    {
      // Cheap argon2 for the keys: the hash carries its parameters, so the hub verifies them as any other.
      const pool = new pg.Pool({ connectionString: hubUrl, max: 2 });
      try {
        const store = new HubStore(pool, { argon2: TEST_ARGON2, source: 'bench' });
        await store.migrate();
        await store.createTenant(TENANT);
        for (const b of dbs) keys.set(b.id, (await store.createBranch(TENANT, b.id)).apiKey as string);
      } finally {
        await pool.end();
      }
    }
    for (const b of dbs) {
      const pool = new pg.Pool({ connectionString: b.url, max: 1 });
      try {
        await install(pool, { tenantId: TENANT, branchId: b.id, tables: [{ name: TABLE }] });
      } finally {
        await pool.end();
      }
    }
    const hub = await HubProcess.start({ databaseUrl: hubUrl, jwtKeys: randomJwtKeys(), port: await freePort(), label: `peers-${site.runId}`, env: { HUB_LOG_LEVEL: 'warn' } });
    const command = await agentCommand();
    let agents: ChildProcess[] = [];
    let stopping = false;

    const stopAgents = async () => {
      stopping = true;
      await Promise.all(
        agents.map(async (a) => {
          if (a.exitCode !== null || a.signalCode !== null) return;
          const exited = new Promise((resolve) => a.once('exit', resolve));
          a.kill('SIGTERM');
          await Promise.race([exited, sleep(15_000)]);
          if (a.exitCode === null && a.signalCode === null) a.kill('SIGKILL');
        }),
      );
      agents = [];
    };
    return {
      async start() {
        stopping = false;
        agents = dbs.map((b) =>
          startAgentProcess(
            command,
            { HUB_URL: hub.url, TENANT_ID: TENANT, BRANCH_ID: b.id, API_KEY: keys.get(b.id) as string, DATABASE_URL: b.url, AGENT_TABLES: TABLE, LOG_LEVEL: 'warn' },
            b.id,
            () => stopping,
          ),
        );
        await waitReplicating(site, 'Hub-Broker', 60_000, () => hub.tail());
      },
      stop: stopAgents,
      async tearDown() {
        await stopAgents();
        await hub.stop();
        await site.control.dropDatabase(hubDb);
      },
    };
  },
};
