/**
 * Prometheus metrics of one hub instance. Each instance has its own registry (tests run
 * several in one process). Our metrics carry the prefix `hub_broker_`; the default process and
 * Node.js metrics keep their conventional names so stock dashboards work.
 */
import client from 'prom-client';
import { collectProcessMetrics } from '../common/process-metrics.js';

const P = 'hub_broker_';

/** Bounds label cardinality for values an agent chooses (table names): past `max`, `other`. */
class LabelGuard {
  private readonly seen = new Set<string>();
  constructor(private readonly max: number) {}
  label(value: string): string {
    const v = value.slice(0, 130);
    if (this.seen.has(v)) return v;
    if (this.seen.size >= this.max) return 'other';
    this.seen.add(v);
    return v;
  }
}

export function createMetrics(instanceId: string) {
  const registry = new client.Registry();
  registry.setDefaultLabels({ instance_id: instanceId });
  collectProcessMetrics(registry);
  const r = [registry];
  const tables = new LabelGuard(500);

  const m = {
    registry,
    connectionsActive: new client.Gauge({ name: `${P}connections_active`, help: 'Open branch connections, per tenant.', labelNames: ['tenant'], registers: r }),
    connectionsOpened: new client.Counter({ name: `${P}connections_opened_total`, help: 'Branch connections accepted.', registers: r }),
    connectionsClosed: new client.Counter({ name: `${P}connections_closed_total`, help: 'Branch connections closed, by close code.', labelNames: ['code'], registers: r }),
    httpRefused: new client.Counter({ name: `${P}http_refused_total`, help: 'Requests the HTTP parser refused before any handler (414 URL too long, 431 headers too large, 408, 400), by status.', labelNames: ['status'], registers: r }),
    upgradesRefused: new client.Counter({ name: `${P}upgrades_refused_total`, help: 'WebSocket upgrades refused, by reason.', labelNames: ['reason'], registers: r }),
    framesIn: new client.Counter({ name: `${P}frames_in_total`, help: 'Frames received from agents, by type.', labelNames: ['type'], registers: r }),
    framesOut: new client.Counter({ name: `${P}frames_out_total`, help: 'Frames sent to agents, by type.', labelNames: ['type'], registers: r }),
    changesIn: new client.Counter({ name: `${P}changes_in_total`, help: 'Changes appended to tenant logs (duplicates excluded).', labelNames: ['tenant'], registers: r }),
    changesOut: new client.Counter({ name: `${P}changes_out_total`, help: 'Log entries delivered to branches.', labelNames: ['tenant'], registers: r }),
    duplicates: new client.Counter({ name: `${P}duplicate_changes_total`, help: 'Changes received again (resends) and stored once.', labelNames: ['tenant'], registers: r }),
    authFailures: new client.Counter({ name: `${P}auth_failures_total`, help: 'Failed authentications, by reason.', labelNames: ['reason'], registers: r }),
    authIssued: new client.Counter({ name: `${P}auth_tokens_issued_total`, help: 'Tokens issued by /auth/token and auth.refresh.', labelNames: ['via'], registers: r }),
    routingResyncs: new client.Counter({
      name: `${P}routing_resyncs_total`,
      help: 'Branches whose rows were brought in line with changed routing (a snapshot with evictions).',
      labelNames: ['tenant'],
      registers: r,
    }),
    routingEvictions: new client.Counter({
      name: `${P}routing_evictions_total`,
      help: 'Rows evicted from branches by resyncs after routing changes (live evictions travel as deliveries).',
      labelNames: ['tenant'],
      registers: r,
    }),
    routingRefusals: new client.Counter({ name: `${P}routing_refusals_total`, help: 'Frames refused by routing, by reason.', labelNames: ['reason'], registers: r }),
    rateLimited: new client.Counter({ name: `${P}rate_limited_total`, help: 'Frames or requests refused by a rate limit, by scope.', labelNames: ['scope'], registers: r }),
    protocolErrors: new client.Counter({ name: `${P}protocol_errors_total`, help: 'Error frames sent, by code.', labelNames: ['code'], registers: r }),
    limitViolations: new client.Counter({ name: `${P}limit_violations_total`, help: 'Size and count limits hit, by limit.', labelNames: ['limit'], registers: r }),
    slowConsumers: new client.Counter({ name: `${P}slow_consumers_total`, help: 'Slow consumers paused or closed.', labelNames: ['action'], registers: r }),
    conflicts: new client.Counter({ name: `${P}conflicts_total`, help: 'Conflicts reported by agents, per tenant and table.', labelNames: ['tenant', 'table', 'kind'], registers: r }),
    routeRepairs: new client.Counter({ name: `${P}routing_repairs_total`, help: 'Route repairs: the winning version or an eviction sent to a branch whose copy of a row that moved while edited was not the one it should hold.', labelNames: ['tenant'], registers: r }),
    conflictsCut: new client.Counter({ name: `${P}conflict_reports_cut_total`, help: 'Conflict reports whose rows were over the size kept, stored and forwarded cut.', labelNames: ['tenant'], registers: r }),
    conflictsUnaudited: new client.Counter({ name: `${P}conflict_reports_unaudited_total`, help: 'Conflict reports not written to the shared audit log: the tenant was over its audit budget.', labelNames: ['tenant'], registers: r }),
    snapshots: new client.Counter({ name: `${P}snapshots_total`, help: 'Snapshots served, by result.', labelNames: ['result'], registers: r }),
    pruned: new client.Counter({ name: `${P}log_pruned_entries_total`, help: 'Log entries removed by retention.', labelNames: ['tenant'], registers: r }),
    appendSeconds: new client.Histogram({
      name: `${P}append_duration_seconds`,
      help: 'Time to append a batch to the tenant log (lock, insert, commit).',
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2],
      registers: r,
    }),
    deliverySeconds: new client.Histogram({
      name: `${P}delivery_latency_seconds`,
      help: 'From the append of an entry to its delivery to a branch, by path.',
      labelNames: ['path'],
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 5, 30, 300],
      registers: r,
    }),
    logDepth: new client.Gauge({ name: `${P}log_depth`, help: 'Entries in the tenant log (head minus pruned offset).', labelNames: ['tenant'], registers: r }),
    branchLag: new client.Gauge({ name: `${P}branch_lag`, help: 'Log head minus the branch cursor.', labelNames: ['tenant', 'branch'], registers: r }),
    registryUnavailable: new client.Counter({ name: `${P}registry_unavailable_total`, help: 'Admin answers given without the location registry (Redis unreachable).', registers: r }),
    pubsubProbeOk: new client.Gauge({ name: `${P}pubsub_probe_ok`, help: '1 when the last pub/sub self-probe came back in time.', registers: r }),
    tableLabel: (table: string) => tables.label(table),
  };
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;
