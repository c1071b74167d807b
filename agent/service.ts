/**
 * `hub-broker agent`: wires the configuration, the branch database, LISTEN/NOTIFY with a poll
 * fallback, the hub client, metrics and logs. Refuses to start unless `hubsync` is installed
 * for this tenant, branch and table list.
 */
import type { Server } from 'node:http';
import type { Logger } from 'pino';
import type pg from 'pg';
import { ApplyEngine } from './apply/engine.js';
import { loadInstalledTables, type TableInfo } from './catalog.js';
import { HubClient } from './client.js';
import { describeConfig, type AgentConfig } from './config.js';
import { createPool } from './db.js';
import { AgentError } from './errors.js';
import { listen, type Listener } from './listener.js';
import { createLogger } from './logger.js';
import { AgentMetrics, serveMetrics } from './metrics.js';
import { Outbox } from './outbox.js';
import { HUBSYNC_SCHEMA_VERSION } from './sql/schema.js';

export interface AgentService {
  readonly client: HubClient;
  readonly metrics: AgentMetrics;
  /** Resolves when the agent stopped. */
  readonly done: Promise<void>;
  stop(): Promise<void>;
}

/**
 * Checks that `hubsync` here was installed for this tenant, branch and table list (columns are
 * read from the installation; a changed table list or strategy needs `install` again).
 */
export async function checkInstallation(pool: pg.Pool, config: AgentConfig): Promise<Map<string, TableInfo>> {
  const meta = await pool
    .query<{ tenant_id: string; branch_id: string; version: number }>(`SELECT tenant_id, branch_id, version FROM hubsync.meta`)
    // Only a missing schema or table means "not installed"; any other error (database
    // unreachable, too many connections) is reported as what it is.
    .catch((err: unknown) => {
      const code = (err as { code?: unknown }).code;
      if (code === '42P01' || code === '3F000') return { rows: [] };
      throw err;
    });
  const m = meta.rows[0];
  if (!m) throw new AgentError('not_installed', 'hubsync is not installed in this database; run hub-broker agent install');
  if (m.tenant_id !== config.tenantId || m.branch_id !== config.branchId) {
    throw new AgentError(
      'other_installation',
      `this database is installed for tenant ${m.tenant_id} branch ${m.branch_id}, but the agent is configured as ${config.tenantId}/${config.branchId}`,
    );
  }
  if (m.version < HUBSYNC_SCHEMA_VERSION) {
    throw new AgentError(
      'install_outdated',
      `hubsync here is schema version ${m.version}, this agent needs ${HUBSYNC_SCHEMA_VERSION}; run hub-broker agent install (it upgrades in place and keeps the cursor and outbox)`,
    );
  }
  const installed = await loadInstalledTables(pool);
  const wanted = new Map(config.tables.map((t) => [t.name, t]));
  const differences: string[] = [];
  for (const [name, want] of wanted) {
    const t = installed.get(name);
    const strategy = want.conflictStrategy;
    const merge = (want.additive?.length ?? 0) > 0 ? 'column' : (want.merge ?? 'row');
    const additive = [...new Set(want.additive ?? [])].sort().join(',');
    if (!t) differences.push(`${name} is configured but not installed`);
    else if (t.strategy !== strategy) differences.push(`${name} strategy is ${t.strategy ?? 'the tenant default'} at install, ${strategy ?? 'the tenant default'} in the configuration`);
    else if (t.merge !== merge || [...t.additive].sort().join(',') !== additive) {
      differences.push(`${name} merges by ${t.merge} with counters [${t.additive.join(', ')}] at install, by ${merge} with [${additive.split(',').filter(Boolean).join(', ')}] in the configuration`);
    }
  }
  // Tables a schema change added are synced without being configured.
  for (const [name, t] of installed) if (!wanted.has(name) && t.addedBy === undefined) differences.push(`${name} is installed but not configured`);
  if (differences.length > 0) {
    throw new AgentError('install_outdated', `the configuration differs from the installation (${differences.join('; ')}); run hub-broker agent install`);
  }
  return installed;
}

export interface StartOptions {
  readonly logger?: Logger;
  /** The jitter source of reconnect backoff (tests shorten long backoffs with it). */
  readonly random?: () => number;
}

export async function startAgent(config: AgentConfig, options: StartOptions = {}): Promise<AgentService> {
  const log = options.logger ?? createLogger(config.logLevel);
  log.info({ config: describeConfig(config) }, 'starting the agent');
  const pool = createPool(config.databaseUrl, 6);
  let metricsServer: Server | undefined;
  let listener: Listener | undefined;
  let poll: NodeJS.Timeout | undefined;
  try {
    const tables = await checkInstallation(pool, config);
    const engine = new ApplyEngine(pool, tables, {
      branchId: config.branchId,
      maxForwardSkewMs: config.maxForwardSkewMs,
      maxRowsPerTransaction: config.applyMaxRows,
      lockTimeoutMs: config.applyLockTimeoutMs,
    });
    const outbox = new Outbox(pool, config.branchId);
    const metrics = new AgentMetrics({ tenant: config.tenantId, branch: config.branchId });
    metrics.watchDeadLetters(pool);
    metrics.watchSchema(pool);
    const warnedUnsendable = new Set<string>();
    outbox.onUnsendable = (table, n) => {
      metrics.unsendable.inc({ table }, n);
      if (warnedUnsendable.has(table)) return;
      warnedUnsendable.add(table);
      log.warn({ table }, 'local changes of this table are not sent: no route of the tenant lets this branch send it');
    };
    if (config.metricsPort !== undefined) {
      metricsServer = await serveMetrics(metrics.registry, config.metricsPort);
      log.info({ port: config.metricsPort }, 'serving /metrics');
    }
    const client = new HubClient({ config, pool, engine, outbox, logger: log, metrics, ...(options.random ? { random: options.random } : {}) });
    listener = listen(config.databaseUrl, () => client.wake(), log);
    let polling = false;
    poll = setInterval(() => {
      client.wake();
      if (polling) return;
      polling = true;
      outbox
        .pending()
        .then((n) => metrics.pending.set(n))
        .catch(() => undefined)
        .finally(() => (polling = false));
    }, config.pollMs);
    const done = client.start();
    const stop = async (): Promise<void> => {
      if (poll) clearInterval(poll);
      await listener?.stop();
      await client.stop();
      await client.wakeFlag.set(false).catch(() => undefined);
      await new Promise<void>((r) => (metricsServer ? metricsServer.close(() => r()) : r()));
      await pool.end();
      log.info('agent stopped');
    };
    return { client, metrics, done, stop };
  } catch (err) {
    if (poll) clearInterval(poll);
    await listener?.stop();
    metricsServer?.close();
    await pool.end();
    throw err;
  }
}
