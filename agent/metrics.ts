/** Prometheus metrics of one agent (prefix `hub_broker_agent_`), in a registry of its own. */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { collectProcessMetrics } from '../common/process-metrics.js';
import type { ApplyResult } from './apply/engine.js';
import type { Queryable } from './db.js';

export class AgentMetrics {
  readonly registry = new Registry();
  readonly connected: Gauge;
  readonly connects: Counter<'result'>;
  readonly closes: Counter<'code'>;
  readonly batchesSent: Counter;
  readonly changesSent: Counter;
  readonly changesAcked: Counter;
  readonly pending: Gauge;
  readonly applied: Counter<'result'>;
  readonly applySeconds: Histogram;
  readonly applyRetries: Counter;
  readonly applyLockedReads: Counter;
  readonly applyFallbacks: Counter;
  readonly cursor: Gauge;
  readonly conflictsReported: Counter<'kind'>;
  readonly conflictNotifications: Counter;
  readonly clockSkew: Counter;
  readonly snapshotPercent: Gauge;
  readonly hubErrors: Counter<'code'>;
  readonly tokenRequests: Counter<'result'>;
  readonly sendBlocked: Gauge;
  readonly unsendable: Counter<'table'>;

  constructor(labels: { tenant: string; branch: string }, defaults = true) {
    const r = this.registry;
    r.setDefaultLabels(labels);
    if (defaults) collectProcessMetrics(r, 'hub_broker_agent_');
    const p = 'hub_broker_agent_';
    this.connected = new Gauge({ name: `${p}connected`, help: '1 while a socket to the hub is open and greeted', registers: [r] });
    this.connects = new Counter({ name: `${p}connects_total`, help: 'Connection attempts by result', labelNames: ['result'], registers: [r] });
    this.closes = new Counter({ name: `${p}closes_total`, help: 'Sockets closed, by close code', labelNames: ['code'], registers: [r] });
    this.batchesSent = new Counter({ name: `${p}batches_sent_total`, help: 'sync.batch frames sent', registers: [r] });
    this.changesSent = new Counter({ name: `${p}changes_sent_total`, help: 'Changes sent (resends included)', registers: [r] });
    this.changesAcked = new Counter({ name: `${p}changes_acked_total`, help: 'Changes acknowledged by the hub and dropped from the outbox', registers: [r] });
    this.pending = new Gauge({ name: `${p}outbox_pending`, help: 'Captured changes not yet acknowledged', registers: [r] });
    this.applied = new Counter({ name: `${p}changes_applied_total`, help: 'Received changes by outcome', labelNames: ['result'], registers: [r] });
    this.applySeconds = new Histogram({
      name: `${p}apply_seconds`,
      help: 'Time to apply one sync.deliver or snapshot chunk',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [r],
    });
    this.applyRetries = new Counter({
      name: `${p}apply_retries_total`,
      help: 'Apply transactions run again: race (a local writer changed a row after the read), lock_timeout, deadlock, serialization',
      labelNames: ['reason'],
      registers: [r],
    });
    this.applyLockedReads = new Counter({
      name: `${p}apply_locked_reads_total`,
      help: 'Apply transactions that read their rows under lock, because local writers kept changing them between a read and the transaction',
      registers: [r],
    });
    this.applyFallbacks = new Counter({
      name: `${p}apply_fallbacks_total`,
      help: 'Apply chunks halved to isolate a change the database refused',
      registers: [r],
    });
    this.unsendable = new Counter({
      name: `${p}unrouted_changes_total`,
      help: 'Local changes not sent because no route lets this branch send their table (dropped from the outbox)',
      labelNames: ['table'],
      registers: [r],
    });
    this.cursor = new Gauge({ name: `${p}cursor`, help: 'Highest hub log offset applied', registers: [r] });
    this.conflictsReported = new Counter({ name: `${p}conflict_reports_total`, help: 'conflict.report frames sent', labelNames: ['kind'], registers: [r] });
    this.conflictNotifications = new Counter({ name: `${p}conflict_notifications_total`, help: 'conflict.notify frames received', registers: [r] });
    this.clockSkew = new Counter({ name: `${p}clock_skew_total`, help: 'Remote timestamps beyond the skew limit (applied; the clock did not follow)', registers: [r] });
    this.snapshotPercent = new Gauge({ name: `${p}snapshot_percent`, help: 'Progress of the snapshot being applied', registers: [r] });
    this.hubErrors = new Counter({ name: `${p}hub_errors_total`, help: 'error frames received from the hub, by code', labelNames: ['code'], registers: [r] });
    this.tokenRequests = new Counter({ name: `${p}token_requests_total`, help: 'POST /auth/token by result', labelNames: ['result'], registers: [r] });
    this.sendBlocked = new Gauge({ name: `${p}send_blocked`, help: '1 while a single change is larger than the hub accepts in one frame', registers: [r] });
    // Gauges read from the database: those sharing a reader run one query per scrape.
    const gauge = <T>(name: string, help: string, read: () => Promise<T>, value: (t: T) => number): void => {
      new Gauge({
        name: `${p}${name}`,
        help,
        registers: [r],
        async collect() {
          this.set(value(await read()));
        },
      });
    };
    const deadLetters = oncePerScrape(async () => (await this.deadLetters?.().catch(() => null)) ?? { n: 0, age: 0 });
    gauge('dead_letters', 'Changes the apply could not write, waiting for hub-broker agent dead-letters retry or discard', deadLetters, (d) => d.n);
    gauge('dead_letter_oldest_seconds', 'Age of the oldest dead letter waiting (0 when none)', deadLetters, (d) => d.age);
    const schema = oncePerScrape(async () => (await this.schema?.().catch(() => null)) ?? { version: 0, blocked: 0 });
    gauge('schema_version', 'Schema version applied at this branch (docs/sync-semantics.md "Schema changes")', schema, (x) => x.version);
    gauge('schema_blocked', 'The schema change the incoming stream stopped at because it cannot be applied here (0 when none)', schema, (x) => x.blocked);
  }

  /** Where the schema gauges read from; unset (they show 0) until watchSchema. */
  private schema: (() => Promise<{ version: number; blocked: number }>) | null = null;

  /** The schema version applied here, and the one the stream stopped at, read at each scrape. */
  watchSchema(q: Queryable): void {
    this.schema = async () => {
      const { rows } = await q.query<{ version: number; blocked: number | null }>(
        `SELECT schema_version AS version, (schema_blocked->>'version')::int AS blocked FROM hubsync.apply_state`,
      );
      return { version: rows[0]?.version ?? 0, blocked: rows[0]?.blocked ?? 0 };
    };
  }

  /** Where the dead-letter gauges read from; unset (they show 0) until watchDeadLetters. */
  private deadLetters: (() => Promise<{ n: number; age: number }>) | null = null;

  /**
   * Dead letters waiting here and the age of the oldest, read from the database at each scrape
   * (they leave only when a person retries or discards them: docs/operations.md).
   */
  watchDeadLetters(q: Queryable): void {
    this.deadLetters = async () => {
      const { rows } = await q.query<{ n: number; age: number | null }>(
        `SELECT count(*)::int AS n, extract(epoch FROM now() - min(failed_at))::float8 AS age FROM hubsync.dead_letter`,
      );
      return { n: rows[0]?.n ?? 0, age: rows[0]?.age ?? 0 };
    };
  }

  /** Counts one apply (a delivery or snapshot chunk) that took `seconds`. */
  recordApply(r: ApplyResult, seconds: number): void {
    this.applySeconds.observe(seconds);
    if (r.applied) this.applied.inc({ result: 'applied' }, r.applied);
    if (r.skipped) this.applied.inc({ result: 'skipped' }, r.skipped);
    if (r.conflicts) this.applied.inc({ result: 'conflict' }, r.conflicts);
    if (r.merged) this.applied.inc({ result: 'merged' }, r.merged);
    if (r.deadLetters) this.applied.inc({ result: 'dead_letter' }, r.deadLetters);
    if (r.skewed) this.clockSkew.inc(r.skewed);
    for (const [reason, n] of Object.entries(r.retries)) if (n > 0) this.applyRetries.inc({ reason }, n);
    if (r.fallbacks) this.applyFallbacks.inc(r.fallbacks);
    if (r.lockedReads) this.applyLockedReads.inc(r.lockedReads);
  }
}

/** `read`, run once for all the gauges that ask during one scrape (they ask in the same turn). */
function oncePerScrape<T>(read: () => Promise<T>): () => Promise<T> {
  let reading: Promise<T> | null = null;
  return () =>
    (reading ??= read().finally(() => {
      setTimeout(() => (reading = null), 0).unref();
    }));
}

/** Serves `/metrics` and `/health` on `port`; resolves once listening. */
export async function serveMetrics(registry: Registry, port: number, host = '0.0.0.0'): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url === '/metrics') {
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': registry.contentType });
          res.end(text);
        },
        () => {
          res.writeHead(500);
          res.end();
        },
      );
      return;
    }
    if (req.url === '/health') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok\n');
      return;
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
