/**
 * End-to-end helpers: a real hub (in this process, or a `hub-broker hub` child process that a
 * test can SIGKILL), real branch databases with a business schema and hubsync installed, and
 * real agents (`startAgent` in this process, or `hub-broker agent` child processes) talking to
 * the hub over WebSockets. Everything a file creates is dropped by `E2E.close()`.
 *
 * Set E2E_LOG_LEVEL=debug (or info) to see agent and hub logs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { expect } from 'vitest';
import { formatTableList, loadConfig, type AgentConfig, type TableConfig } from '../../agent/config.js';
import { install } from '../../agent/install.js';
import { createLogger } from '../../agent/logger.js';
import { startAgent, type AgentService } from '../../agent/service.js';
import { dump } from '../../agent/testing/branches.js';
import type { HubApp } from '../../hub/app.js';
import type { HubConfig } from '../../hub/config.js';
import { createPool, HubStore } from '../../hub/store/index.js';
import { seedBranch, startTestHub, TEST_ARGON2, TEST_JWT_KEYS } from '../../hub/testing/harness.js';
import { createTestDatabase, type TestDatabase } from '../support/pg.js';
import { freePort } from '../support/net.js';

export { freePort };

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const LOG_LEVEL = (process.env.E2E_LOG_LEVEL ?? 'silent') as AgentConfig['logLevel'];


/** A running hub: in this process (`app` set) or a child process (`kill()` is a SIGKILL). */
export interface Hub {
  readonly url: string;
  readonly port: number;
  readonly store: HubStore;
  readonly app: HubApp | undefined;
  /** Stops gracefully. */
  stop(): Promise<void>;
}

/** A hub child process: `hub-broker hub`, as it runs in production. */
export interface HubProcess extends Hub {
  readonly child: ChildProcess;
  readonly output: () => string;
  /** SIGKILL: no shutdown, sockets drop, appends in flight die with the process. */
  kill(): Promise<void>;
}

/** A child process with its output kept (shown when a test fails to help find out why). */
function spawnCli(args: string[], env: Record<string, string>): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/hub-broker.ts', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const chunks: string[] = [];
  let size = 0;
  const keep = (b: Buffer): void => {
    // The last ~256 KiB is enough to diagnose; a chatty child must not eat the test's memory.
    chunks.push(b.toString('utf8'));
    size += b.length;
    while (size > 256 * 1024 && chunks.length > 1) size -= (chunks.shift() as string).length;
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => chunks.join(''), exited };
}

async function waitHealthy(url: string, exited: Promise<number | null>, output: () => string): Promise<void> {
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (gone) throw new Error(`hub process exited during start-up:\n${output().slice(-4000)}`);
    const ok = await fetch(`${url}/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`hub process not healthy after 30 s:\n${output().slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Everything one test file runs: the hub database, hubs, branches and agents. `close()` stops
 * agents and hubs and drops the databases.
 */
export class E2E {
  private readonly cleanups: (() => Promise<unknown>)[] = [];
  private hubDb: TestDatabase | undefined;
  private hubPool: pg.Pool | undefined;
  private storeInstance: HubStore | undefined;
  private registering: Promise<unknown> = Promise.resolve();

  constructor(readonly label: string) {}

  /** The hub database (created once per file) and a store on it, migrated. */
  async store(): Promise<HubStore> {
    if (this.storeInstance) return this.storeInstance;
    this.hubDb = await createTestDatabase(`${this.label}_hub`);
    this.hubPool = createPool(this.hubDb.url, { max: 3, applicationName: 'e2e-store' });
    this.storeInstance = new HubStore(this.hubPool, { argon2: TEST_ARGON2, source: 'e2e' });
    await this.storeInstance.migrate();
    return this.storeInstance;
  }

  get hubDatabaseUrl(): string {
    if (!this.hubDb) throw new Error('call store() first');
    return this.hubDb.url;
  }

  /** A hub in this process (`hub/app.ts`), with test settings and `overrides`. */
  async startHub(overrides: Partial<HubConfig> = {}): Promise<Hub> {
    const store = await this.store();
    const app = await startTestHub(this.hubDatabaseUrl, { authRate: undefined, ...overrides });
    let stopped = false;
    const hub: Hub = {
      url: app.url,
      port: app.port,
      store,
      app,
      stop: async () => {
        if (stopped) return;
        stopped = true;
        await app.stop();
      },
    };
    this.cleanups.push(() => hub.stop());
    return hub;
  }

  /** `hub-broker hub` as a child process on `port` (a free one by default). */
  async startHubProcess(port?: number, env: Record<string, string> = {}): Promise<HubProcess> {
    const store = await this.store();
    const p = port ?? (await freePort());
    const { child, output, exited } = spawnCli(['hub'], {
      DATABASE_URL: this.hubDatabaseUrl,
      HUB_JWT_KEYS: TEST_JWT_KEYS,
      HUB_HOST: '127.0.0.1',
      HUB_PORT: String(p),
      HUB_LOG_LEVEL: LOG_LEVEL === 'silent' ? 'warn' : LOG_LEVEL,
      HUB_ARGON2_MEMORY_KIB: String(TEST_ARGON2.memoryCost),
      HUB_ARGON2_TIME_COST: String(TEST_ARGON2.timeCost),
      HUB_AUTH_RATE: 'off',
      HUB_INSTANCE_ID: `e2e-${p}`,
      ...env,
    });
    const url = `http://127.0.0.1:${p}`;
    await waitHealthy(url, exited, output);
    let gone = false;
    void exited.then(() => (gone = true));
    const hub: HubProcess = {
      url,
      port: p,
      store,
      app: undefined,
      child,
      output,
      stop: async () => {
        if (gone) return;
        child.kill('SIGTERM');
        await exited;
      },
      kill: async () => {
        if (gone) return;
        child.kill('SIGKILL');
        await exited;
      },
    };
    this.cleanups.push(() => hub.kill());
    return hub;
  }

  /**
   * A branch: registered at the hub (tenant created when new), its own database with `ddl`,
   * hubsync installed for `tables`.
   */
  async branch(hub: Pick<Hub, 'store' | 'url'>, tenant: string, id: string, ddl: string, tables: readonly TableConfig[]): Promise<Branch> {
    const db = await createTestDatabase(`${this.label}_${id}`);
    const pool = new pg.Pool({ connectionString: db.url, max: 8, application_name: `e2e-${id}` });
    pool.on('error', () => undefined);
    if (ddl.trim() !== '') await pool.query(ddl);
    await install(pool, { tenantId: tenant, branchId: id, tables });
    // Registration is serialised: two branches of a new tenant would both try to create it.
    const registered = this.registering.then(() => seedBranch(hub.store, tenant, id));
    this.registering = registered.catch(() => undefined);
    const apiKey = await registered;
    const b = new Branch(tenant, id, db, pool, apiKey, hub.url, tables);
    this.cleanups.push(async () => {
      await b.stopAll();
      await pool.end();
      await db.drop();
    });
    return b;
  }

  async close(): Promise<void> {
    // Agents and hubs first (reverse order of creation), then the databases.
    for (const fn of this.cleanups.reverse()) await fn().catch((err: unknown) => console.error(`e2e cleanup: ${(err as Error).message}`));
    this.cleanups.length = 0;
    await this.hubPool?.end();
    await this.hubDb?.drop();
  }
}

/** An agent run as `hub-broker agent` in a child process. */
export interface AgentProcess {
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<number | null>;
  /** SIGKILL: the process dies wherever it is (mid-batch, mid-apply). */
  kill(): Promise<void>;
  /** SIGTERM: graceful shutdown. */
  stop(): Promise<number | null>;
}

export class Branch {
  /** The agent running in this process, if any. */
  agent: AgentService | undefined;
  private processes = new Set<AgentProcess>();

  constructor(
    readonly tenant: string,
    readonly id: string,
    readonly db: TestDatabase,
    readonly pool: pg.Pool,
    readonly apiKey: string,
    public hubUrl: string,
    readonly tables: readonly TableConfig[],
  ) {}

  /** The agent's environment, as an operator-made Secret plus a few settings would give it. */
  env(extra: Record<string, string> = {}): Record<string, string> {
    return {
      HUB_URL: this.hubUrl,
      TENANT_ID: this.tenant,
      BRANCH_ID: this.id,
      API_KEY: this.apiKey,
      DATABASE_URL: this.db.url,
      AGENT_TABLES: formatTableList(this.tables),
      AGENT_POLL_MS: '250',
      LOG_LEVEL: LOG_LEVEL,
      ...extra,
    };
  }

  config(extra: Record<string, string> = {}): AgentConfig {
    return loadConfig({ env: this.env(extra), argv: [] });
  }

  /** Starts the agent in this process (`agent/service.ts`). */
  async start(extra: Record<string, string> = {}, options: { random?: () => number } = {}): Promise<AgentService> {
    if (this.agent) throw new Error(`agent of ${this.id} already running`);
    const config = this.config(extra);
    this.agent = await startAgent(config, { logger: createLogger(config.logLevel).child({ branch: this.id }), ...options });
    return this.agent;
  }

  /** Stops the in-process agent gracefully. */
  async stop(): Promise<void> {
    const a = this.agent;
    this.agent = undefined;
    await a?.stop();
  }

  /** Starts `hub-broker agent` as a child process. */
  spawn(extra: Record<string, string> = {}): AgentProcess {
    const { child, output, exited } = spawnCli(['agent'], this.env(extra));
    let gone = false;
    void exited.then(() => (gone = true));
    const p: AgentProcess = {
      child,
      output,
      exited,
      kill: async () => {
        if (!gone) child.kill('SIGKILL');
        await exited;
        this.processes.delete(p);
      },
      stop: async () => {
        if (!gone) child.kill('SIGTERM');
        const code = await exited;
        this.processes.delete(p);
        return code;
      },
    };
    this.processes.add(p);
    return p;
  }

  async stopAll(): Promise<void> {
    await this.stop().catch(() => undefined);
    for (const p of [...this.processes]) await p.kill();
  }

  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, values: unknown[] = []): Promise<R[]> {
    return (await this.pool.query<R>(sql, values)).rows;
  }

  /** Runs `statements` in one transaction. */
  async transaction(...statements: string[]): Promise<void> {
    const c = await this.pool.connect();
    try {
      await c.query('BEGIN');
      for (const s of statements) await c.query(s);
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      c.release();
    }
  }

  /** Every row of `table` as PostgreSQL text, in key order, with the pinned text-form settings. */
  dump(table: string, pk: readonly string[] = ['id']): Promise<string[]> {
    return dump(this.pool, table, pk);
  }

  /** Captured changes the hub has not acknowledged yet. */
  async pending(): Promise<number> {
    return Number((await this.query<{ n: string }>(`SELECT count(*) AS n FROM hubsync.change_log`))[0]?.n ?? 0);
  }

  /** Every row version (tombstones included), comparable across branches. */
  async versions(): Promise<unknown[]> {
    return this.query(`SELECT tbl, pk, vv, hlc::text AS hlc, origin, deleted, cols FROM hubsync.row_version ORDER BY key`);
  }

  async deadLetters(): Promise<{ tbl: string; reason: string; change: unknown }[]> {
    return this.query(`SELECT tbl, reason, change FROM hubsync.dead_letter ORDER BY id`);
  }

  async conflicts(): Promise<
    { tbl: string; pk: Record<string, string>; winner: string; local_version: { origin: string }; incoming_version: { origin: string }; report: boolean; reported_at: Date | null }[]
  > {
    return this.query(`SELECT tbl, pk, winner, local_version, incoming_version, report, reported_at FROM hubsync.conflicts ORDER BY id`);
  }
}

/** The current value of a prom-client counter or gauge (summed over label sets matching `labels`). */
export async function metric(m: { get(): Promise<{ values: { value: number; labels: Record<string, unknown> }[] }> }, labels: Record<string, string> = {}): Promise<number> {
  const { values } = await m.get();
  return values.filter((v) => Object.entries(labels).every(([k, x]) => String(v.labels[k]) === x)).reduce((n, v) => n + v.value, 0);
}

/**
 * Waits until every branch holds the same rows in `tables` (and the same row versions), and no
 * outbox holds anything unsent. Returns the common dumps.
 */
export async function converged(branches: readonly Branch[], tables: readonly { name: string; pk?: readonly string[] }[], timeout = 60_000): Promise<string[][]> {
  const snapshot = async (): Promise<string> => {
    const per = await Promise.all(
      branches.map(async (b) => ({
        rows: await Promise.all(tables.map((t) => b.dump(t.name, t.pk ?? ['id']))),
        versions: await b.versions(),
        pending: await b.pending(),
      })),
    );
    const first = per[0];
    const same = per.every((p) => JSON.stringify(p.rows) === JSON.stringify(first?.rows) && JSON.stringify(p.versions) === JSON.stringify(first?.versions));
    return same && per.every((p) => p.pending === 0) ? 'converged' : `differ: ${per.map((p, i) => `${branches[i]?.id} ${p.rows.map((r) => r.length).join('/')} rows, ${p.versions.length} versions, ${p.pending} pending`).join('; ')}`;
  };
  await expect.poll(snapshot, { timeout, interval: 200 }).toBe('converged');
  return Promise.all(tables.map((t) => (branches[0] as Branch).dump(t.name, t.pk ?? ['id'])));
}

/**
 * A user trigger that records, at this branch, every row the apply engine writes (only writes
 * made with capture switched off, i.e. changes from the hub), in the order they happen. Lets a
 * test see that each change was applied once and in order.
 */
export function applyAuditDdl(table: string): string {
  const name = table.replace(/[^a-z0-9]/gi, '_');
  return `
    CREATE TABLE IF NOT EXISTS public.apply_audit (n bigserial PRIMARY KEY, tbl text NOT NULL, op text NOT NULL, old_row jsonb, new_row jsonb);
    CREATE OR REPLACE FUNCTION public.audit_${name}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO public.apply_audit (tbl, op, old_row, new_row)
      VALUES (TG_TABLE_NAME, TG_OP, CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END, CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END);
      RETURN NULL;
    END $$;
    CREATE TRIGGER audit_applied AFTER INSERT OR UPDATE OR DELETE ON ${table}
      FOR EACH ROW WHEN (current_setting('hubsync.applying', true) = 'on') EXECUTE FUNCTION public.audit_${name}();`;
}
