/**
 * The system the demo runs: the real hub (`startHub`) and one real agent (`startAgent`) per
 * branch, in this process, over embedded databases or, for the hub, the PostgreSQL and Redis
 * named by `DATABASE_URL` and `REDIS_URL`. Secrets (JWT key, admin token, API keys) are made
 * here and stay in memory.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import pino, { type DestinationStream } from 'pino';
import type { AgentService } from '../agent/service.js';
import { formatTableList, loadConfig as loadAgentConfig, type AgentConfig, type TableConfig } from '../agent/config.js';
import { createPool } from '../agent/db.js';
import { install } from '../agent/install.js';
import { createLogger as createAgentLogger } from '../agent/logger.js';
import { startAgent } from '../agent/service.js';
import { startHub, type HubApp } from '../hub/app.js';
import { loadConfig as loadHubConfig } from '../hub/config.js';
import { REDACT_PATHS } from '../hub/logger.js';
import type { SyncedTable } from './checksum.js';
import type { EmbeddedDatabase, EmbeddedDatabases } from './databases.js';

export const TABLES: readonly SyncedTable[] = [
  { name: 'public.customer', pk: ['id'] },
  { name: 'public.orders', pk: ['id'] },
  { name: 'public.product', pk: ['id'] },
];

/** How each table merges: a product's stock is a counter (docs/sync-semantics.md "Counters"). */
export const TABLE_CONFIG: readonly TableConfig[] = [{ name: 'public.customer' }, { name: 'public.orders' }, { name: 'public.product', additive: ['stock'] }];

/** The business tables, the same at every branch. */
const BRANCH_DDL = `
CREATE TABLE public.customer (
  id integer PRIMARY KEY,
  name text NOT NULL,
  email text,
  city text,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE public.orders (
  id bigint PRIMARY KEY,
  branch text NOT NULL,
  customer_id integer NOT NULL,
  amount numeric(10, 2) NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE public.product (
  id integer PRIMARY KEY,
  name text NOT NULL,
  stock integer NOT NULL
);`;

/** How often an agent looks at its outbox: NOTIFY does not reach it through PGlite. */
export const AGENT_POLL_MS = 200;

export type LogLevel = 'warn' | 'info';

export interface ClusterOptions {
  readonly databases: EmbeddedDatabases;
  /** `DATABASE_URL`: the hub uses this server instead of an embedded database. */
  readonly hubDatabaseUrl: string | undefined;
  /** `REDIS_URL`: the hub uses the Redis engine instead of the memory engine. */
  readonly redisUrl: string | undefined;
  readonly logLevel: LogLevel;
  /** Where hub and agent logs go (stderr), away from the story on stdout. */
  readonly logDestination: DestinationStream;
}

export class DemoBranch {
  private agentService: AgentService | undefined;

  constructor(
    readonly id: string,
    readonly database: EmbeddedDatabase,
    /** The demo's own connections, for the writes and reads it narrates. */
    readonly pool: pg.Pool,
    private readonly config: AgentConfig,
    private readonly logDestination: DestinationStream,
  ) {}

  get agent(): AgentService | undefined {
    return this.agentService;
  }

  get online(): boolean {
    return this.agentService?.client.connected === true;
  }

  async startAgent(): Promise<void> {
    if (this.agentService) return;
    const logger = createAgentLogger(this.config.logLevel, this.logDestination).child({ branch: this.id });
    this.agentService = await startAgent(this.config, { logger });
  }

  async stopAgent(): Promise<void> {
    const a = this.agentService;
    this.agentService = undefined;
    await a?.stop();
  }
}

export class Cluster {
  readonly branches: DemoBranch[] = [];

  private constructor(
    private readonly options: ClusterOptions,
    readonly hub: HubApp,
    readonly tenantId: string,
    /** The hub's database: embedded, or the server from `DATABASE_URL`. */
    readonly hubDatabase: EmbeddedDatabase | 'external',
    readonly adminToken: string,
  ) {}

  static async start(options: ClusterOptions): Promise<Cluster> {
    const hubDatabase = options.hubDatabaseUrl === undefined ? await options.databases.start('hub') : 'external';
    const databaseUrl = hubDatabase === 'external' ? (options.hubDatabaseUrl as string) : hubDatabase.url;
    const adminToken = randomBytes(24).toString('base64url');
    const env: Record<string, string> = {
      DATABASE_URL: databaseUrl,
      HUB_JWT_KEYS: `demo:${randomBytes(32).toString('base64url')}`,
      HUB_ADMIN_TOKEN: adminToken,
    };
    if (options.redisUrl !== undefined) env.REDIS_URL = options.redisUrl;
    const config = loadHubConfig({
      env,
      overrides: {
        host: '127.0.0.1',
        port: 0,
        instanceId: `demo-${randomBytes(3).toString('hex')}`,
        logLevel: options.logLevel,
        databasePoolSize: 8,
        // NOTIFY does not travel through PGlite: the periodic log-head poll and status resync
        // stand in for it, so they run often.
        pollIntervalMs: 250,
        statusResyncMs: 2000,
        maintenanceIntervalMs: 2000,
        // PGlite runs one transaction at a time, and a snapshot is read in one transaction:
        // a window larger than any snapshot of the demo lets the hub read it all at once and
        // commit, instead of holding every other connection back until the agent has applied it.
        snapshotChunkRows: 200,
        snapshotWindow: 1000,
      },
    });
    const logger = pino(
      {
        level: options.logLevel,
        base: { service: 'hub-broker', instance: config.instanceId },
        redact: { paths: REDACT_PATHS, censor: '[redacted]' },
        timestamp: pino.stdTimeFunctions.isoTime,
      },
      options.logDestination,
    );
    const hub = await startHub(config, { logger });
    try {
      // On a shared server each run gets a tenant of its own, so runs never collide.
      const tenantId = hubDatabase === 'external' ? `demo-${randomBytes(4).toString('hex')}` : 'demo';
      await hub.ctx.store.createTenant(tenantId, { conflictStrategy: 'last-write-wins', deletionPolicy: 'delete', tables: [{ name: 'public.product', additive: ['stock'] }] });
      return new Cluster(options, hub, tenantId, hubDatabase, adminToken);
    } catch (err) {
      await hub.stop().catch(() => undefined);
      throw err;
    }
  }

  /**
   * New branches, set up the way an operator would, all at once: database and tables,
   * `hub-broker agent install`, the branch and its API key at the hub, then the agent.
   */
  private stopping = false;

  async addBranches(ids: readonly string[]): Promise<DemoBranch[]> {
    const made = await Promise.allSettled(ids.map((id) => this.prepareBranch(id)));
    const branches = made.flatMap((m) => (m.status === 'fulfilled' ? [m.value] : []));
    if (this.stopping) {
      // stop() ran while these were being set up (the run timed out): nobody else closes them.
      await Promise.all(branches.map((b) => b.pool.end().catch(() => undefined)));
      throw new Error('the demo is stopping');
    }
    // In the order asked for, whatever order they were ready in; failed ones are not kept.
    this.branches.push(...branches);
    const failed = made.find((m) => m.status === 'rejected');
    if (failed) throw failed.reason;
    await Promise.all(branches.map((b) => b.startAgent()));
    return branches;
  }

  async addBranch(id: string): Promise<DemoBranch> {
    const [branch] = await this.addBranches([id]);
    return branch as DemoBranch;
  }

  private async prepareBranch(id: string): Promise<DemoBranch> {
    const database = await this.options.databases.start(id);
    const pool = createPool(database.url, 3, 'hub-broker-demo');
    try {
      await pool.query(BRANCH_DDL);
      await install(pool, { tenantId: this.tenantId, branchId: id, tables: TABLE_CONFIG });
      const { apiKey } = await this.hub.ctx.store.createBranch(this.tenantId, id);
      if (apiKey === null) throw new Error(`the hub issued no API key for ${id}`);
      const config = loadAgentConfig({
        env: {
          HUB_URL: this.hub.url,
          TENANT_ID: this.tenantId,
          BRANCH_ID: id,
          API_KEY: apiKey,
          DATABASE_URL: database.url,
          AGENT_TABLES: formatTableList(TABLE_CONFIG),
          AGENT_POLL_MS: String(AGENT_POLL_MS),
          LOG_LEVEL: this.options.logLevel,
        },
      });
      return new DemoBranch(id, database, pool, config, this.options.logDestination);
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
  }

  branch(id: string): DemoBranch {
    const b = this.branches.find((x) => x.id === id);
    if (!b) throw new Error(`no branch ${id}`);
    return b;
  }

  /**
   * Stops agents, then the hub. On an external hub database the demo's tenant is deleted
   * (schema included) unless `keepTenant`.
   */
  async stop(keepTenant: boolean): Promise<void> {
    this.stopping = true;
    await Promise.all(this.branches.map((b) => b.stopAgent().catch(() => undefined)));
    await Promise.all(this.branches.map((b) => b.pool.end().catch(() => undefined)));
    if (this.hubDatabase === 'external' && !keepTenant) {
      await this.hub.ctx.store.deleteTenant(this.tenantId, 'delete').catch(() => undefined);
    }
    await this.hub.stop();
  }
}
