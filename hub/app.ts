/**
 * Start and stop of one hub instance: migrations, engine, control channel, timers, HTTP server;
 * graceful shutdown (stop accepting, finish in-flight appends, close sockets with 1012).
 */
import { randomBytes } from 'node:crypto';
import { createTokenService } from './auth/jwt.js';
import { Batcher } from './batcher.js';
import type { HubConfig } from './config.js';
import { InFlight, type HubContext } from './context.js';
import { ControlListener } from './control.js';
import { Directory } from './directory.js';
import { MemoryEngine } from './engine/memory.js';
import type { Engine, RedisTarget } from './engine/types.js';
import { CLOSE } from './errors.js';
import { TriageRelay } from './triage.js';
import { AuditBudget } from './conflict-trim.js';
import { Fanout } from './fanout.js';
import { createServer, type HttpServer, type Readiness } from './http/server.js';
import * as log from './log.js';
import { createLogger, type Logger } from './logger.js';
import { maintainAll } from './maintenance.js';
import { holdNotice } from './notices.js';
import { createMetrics } from './metrics.js';
import { RateLimiter } from './rate-limit.js';
import { ConnectionRegistry, type HubConnection } from './registry.js';
import { SnapshotService } from './snapshot.js';
import { createPool, HubStore, tenantSchemaName, type ControlEvent } from './store/index.js';

/** How long a graceful shutdown waits for its close frames to leave (a slow reader's socket may be full). */
export const CLOSE_FLUSH_WAIT_MS = 2000;

export interface HubApp {
  readonly ctx: HubContext;
  readonly port: number;
  /** `http://host:port` or `https://…`. */
  readonly url: string;
  /** Graceful shutdown. */
  stop(): Promise<void>;
  /** Drops everything at once, as a crash would (tests). */
  kill(): void;
  /** Runs compaction, retention and gauges now, for every tenant (tests, admin). */
  maintain(): ReturnType<typeof maintainAll>;
}

export interface StartOptions {
  readonly logger?: Logger;
}

function redisTarget(c: HubConfig): RedisTarget | undefined {
  if (c.redisUrl) return { kind: 'url', url: c.redisUrl };
  if (!c.redisSentinels || !c.redisSentinelName) return undefined;
  return { kind: 'sentinel', sentinels: c.redisSentinels, name: c.redisSentinelName, password: c.redisPassword, sentinelPassword: c.redisSentinelPassword };
}

async function createEngine(config: HubConfig, logger: Logger): Promise<Engine> {
  const target = redisTarget(config);
  if (!target) return new MemoryEngine(config.instanceId);
  const { RedisEngine } = await import('./engine/redis.js');
  return new RedisEngine({
    target,
    prefix: config.redisPrefix,
    instanceId: config.instanceId,
    probeIntervalMs: config.probeIntervalMs,
    logger,
  });
}

export async function startHub(config: HubConfig, options: StartOptions = {}): Promise<HubApp> {
  const logger = options.logger ?? createLogger(config.logLevel, { instance: config.instanceId });
  const metrics = createMetrics(config.instanceId);
  const pool = createPool(config.databaseUrl, { max: config.databasePoolSize, applicationName: `hub-broker:${config.instanceId}` });
  const cleanup: (() => unknown)[] = [() => pool.end().catch(() => undefined)];
  try {
    const store = new HubStore(pool, {
      argon2: { memoryCost: config.argon2MemoryKib, timeCost: config.argon2TimeCost, parallelism: 1 },
      source: `hub:${config.instanceId}`,
    });
    const report = await store.migrate();
    if (report.applied.length > 0 || report.tenantsUpgraded > 0) logger.info(report, 'hub database migrated');

    const engine = await createEngine(config, logger);
    cleanup.push(() => engine.stop());
    const registry = new ConnectionRegistry<HubConnection>();
    const directory = new Directory(store);
    const ctx: HubContext = {
      config,
      instanceId: config.instanceId,
      logger,
      metrics,
      pool,
      store,
      engine,
      directory,
      registry,
      fanout: new Fanout(config.instanceId, engine, registry, directory, logger),
      triage: new TriageRelay(config.instanceId, engine, registry, logger),
      conflictAudit: new AuditBudget(),
      limiter: new RateLimiter(engine, { tenant: config.tenantRate, branch: config.branchRate, auth: config.authRate }),
      tokens: createTokenService(config.jwtKeys, config.tokenTtlSeconds),
      snapshots: new SnapshotService(pool, {
        concurrency: config.snapshotConcurrency,
        chunkRows: config.snapshotChunkRows,
        chunkBytes: Math.floor(config.maxFrameBytes / 2),
        window: config.snapshotWindow,
        ackTimeoutMs: 60_000,
        maxQueued: 100,
      }),
      inflight: new InFlight(),
      positions: new Batcher((schema, branches) => log.branchPositions(pool, schema, branches)),
      // Last-seen times are for people (admin status), so they may be a second late: in a
      // reconnect storm that turns thousands of small updates into a few large ones.
      lastSeen: new Batcher<readonly [string, string], void>(
        async (_key, pairs) => {
          await store.touchLastSeenMany(pairs);
          return pairs.map(() => undefined);
        },
        { lingerMs: 1000 },
      ),
      draining: false,
    };
    ctx.fanout.onUndeliveredConflict = (tenant, branch, frame) => {
      holdNotice(pool, tenantSchemaName(tenant), branch, frame).then(
        // The branch may have connected here while the notice was being stored.
        () => registry.get(tenant, branch)?.noticeHeld(),
        (err: unknown) => logger.warn({ err, tenant, branch }, 'could not hold a conflict notice'),
      );
    };
    ctx.fanout.onTriage = (m) => ctx.triage.receive(m);
    await engine.start(
      (m) => ctx.fanout.receive(m),
      () => [...registry.all()].map((c) => ({ tenantId: c.tenantId, branchId: c.branchId, gen: c.gen })),
    );

    const enforce = async (tenantId: string) => {
      const view = await ctx.directory.reload(tenantId);
      for (const conn of registry.ofTenant(tenantId)) conn.enforce(view);
    };
    const resync = async () => {
      const tenants = new Set([...ctx.directory.cached(), ...registry.tenantIds()]);
      for (const t of tenants) await enforce(t).catch((err: unknown) => logger.warn({ err, tenant: t }, 'status resync failed'));
    };
    const onControl = (e: ControlEvent) => {
      if (e.kind === 'tenant' && e.op === 'deleted') ctx.directory.forget(e.tenant);
      if (!ctx.directory.cached().includes(e.tenant) && [...registry.ofTenant(e.tenant)].length === 0) return;
      enforce(e.tenant).catch((err: unknown) => logger.warn({ err, tenant: e.tenant }, 'applying a control event failed'));
    };
    const control = new ControlListener(config.databaseUrl, onControl, () => void resync(), logger);
    await control.start();
    cleanup.push(() => control.stop());

    const timers: NodeJS.Timeout[] = [];
    const every = (ms: number, fn: () => unknown) => {
      const t = setInterval(fn, ms);
      t.unref();
      timers.push(t);
    };
    cleanup.push(() => timers.forEach(clearInterval));
    // Heartbeat: a socket that did not answer the previous ping is dead.
    every(config.heartbeatMs, () => {
      for (const conn of registry.all()) {
        if (!conn.alive) conn.terminate();
        else conn.ping();
      }
    });
    // A lost notification delays delivery by at most two polls of each tenant's log head. A
    // live connection is held to the head of the poll before: an append that committed just
    // before a poll is usually still being announced (on a busy tenant, nearly every poll sees
    // one), and taking it for a lost notification sent every receiver to read the log.
    let polling = false;
    const polledHeads = new Map<string, number>();
    every(config.pollIntervalMs, async () => {
      if (polling) return;
      polling = true;
      try {
        const tenants = new Set(registry.tenantIds());
        for (const t of polledHeads.keys()) if (!tenants.has(t)) polledHeads.delete(t);
        for (const tenantId of tenants) {
          const view = await ctx.directory.get(tenantId).catch(() => null);
          if (!view) continue;
          const h = await log.head(pool, view.schema).catch(() => null);
          if (h === null) continue;
          const before = polledHeads.get(tenantId);
          polledHeads.set(tenantId, h);
          if (before !== undefined) for (const conn of registry.ofTenant(tenantId)) conn.delivery.onHead(before);
        }
      } finally {
        polling = false;
      }
    });
    every(config.statusResyncMs, () => void resync());
    let maintaining: Promise<unknown> = Promise.resolve();
    const maintain = () => {
      const run = maintaining.then(() => maintainAll(ctx));
      maintaining = run.catch(() => undefined);
      return run;
    };
    every(config.maintenanceIntervalMs, () => void maintain().catch((err: unknown) => logger.warn({ err }, 'maintenance failed')));

    const readiness = async (): Promise<Readiness> => {
      const checks: Readiness['checks'] = {};
      try {
        await pool.query('SELECT 1');
        checks.postgres = { ok: true };
      } catch (err) {
        checks.postgres = { ok: false, detail: (err as Error).message };
      }
      checks.engine = await engine.health().catch((err: unknown) => ({ ok: false, detail: (err as Error).message }));
      metrics.pubsubProbeOk.set(checks.engine.ok ? 1 : 0);
      checks.control = { ok: control.connected, ...(control.connected ? {} : { detail: 'control channel not listening' }) };
      checks.accepting = { ok: !ctx.draining, ...(ctx.draining ? { detail: 'shutting down' } : {}) };
      return { ready: Object.values(checks).every((c) => c.ok), checks };
    };

    const http: HttpServer = createServer(ctx, readiness);
    const port = await http.listen();
    cleanup.push(() => http.destroy());
    const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
    const url = `${http.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
    logger.info({ url, engine: engine.kind, tls: http.tls }, 'hub listening');

    let stopping: Promise<void> | undefined;
    const stop = () =>
      (stopping ??= (async () => {
        ctx.draining = true;
        // How long each step took, logged at the end: where a slow shutdown spends its time.
        const phasesMs: Record<string, number> = {};
        let t = performance.now();
        const phase = (name: string) => {
          const now = performance.now();
          phasesMs[name] = Math.round(now - t);
          t = now;
        };
        await http.stopAccepting();
        phase('stopAccepting');
        // Let appends already running commit and be acknowledged; new frames are ignored (agents resend them).
        await withTimeout(ctx.inflight.idle(), config.shutdownTimeoutMs);
        phase('appends');
        const conns = [...registry.all()];
        for (const c of conns) c.close(CLOSE.restart);
        // The close frames go out from the next ticks (ws corks its writes).
        await new Promise((resolve) => setImmediate(resolve));
        phase('closeSent');
        // Once its close frame is with the kernel, a socket can go: the agent reads the frame
        // before the end of the stream (or a reset, if its answer comes too late), so it still
        // sees 1012. Waiting for every answer instead took 2-4 s for 20,000 agents on a busy
        // 2-core machine, each a second more before a restarted hub listens again.
        await withTimeout(Promise.all(conns.map((c) => c.flushed())), Math.min(config.shutdownTimeoutMs, CLOSE_FLUSH_WAIT_MS));
        phase('closeFlushed');
        for (const c of registry.all()) c.terminate();
        phase('terminate');
        await Promise.all(conns.map((c) => c.flushCursor().catch(() => undefined)));
        phase('cursors');
        await withTimeout(ctx.lastSeen.idle(), config.shutdownTimeoutMs);
        phase('lastSeen');
        // A maintenance pass still running would find the pool ended under it.
        timers.forEach(clearInterval);
        await withTimeout(maintaining, config.shutdownTimeoutMs);
        phase('maintenance');
        for (const fn of cleanup.reverse()) await fn();
        phase('cleanup');
        logger.info({ connections: conns.length, phasesMs }, 'hub stopped');
      })());
    const kill = () => {
      ctx.draining = true;
      timers.forEach(clearInterval);
      for (const c of [...registry.all()]) c.terminate();
      http.destroy();
      engine.kill();
      void control.stop();
      void pool.end().catch(() => undefined);
    };
    return { ctx, port, url, stop, kill, maintain };
  } catch (err) {
    for (const fn of cleanup.reverse()) await Promise.resolve(fn()).catch(() => undefined);
    throw err;
  }
}

async function withTimeout(p: Promise<unknown>, ms: number): Promise<void> {
  let t: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise((resolve) => (t = setTimeout(resolve, ms)))]);
  if (t) clearTimeout(t);
}

/** A fresh instance id for tests and tools that start several instances in one process. */
export function newInstanceId(prefix = 'hub'): string {
  return `${prefix}-${randomBytes(3).toString('hex')}`;
}
