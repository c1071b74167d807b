/** The operator's Prometheus metrics, on a registry of its own (several operators may share a process in tests). */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { collectProcessMetrics } from '../common/process-metrics.js';

export class OperatorMetrics {
  readonly registry = new Registry();

  readonly reconciles = new Counter({
    name: 'hub_broker_operator_reconcile_total',
    help: 'Reconciles by kind and result (success, error).',
    labelNames: ['kind', 'result'] as const,
    registers: [this.registry],
  });

  readonly reconcileErrors = new Counter({
    name: 'hub_broker_operator_reconcile_errors_total',
    help: 'Failed reconciles by kind and Ready reason.',
    labelNames: ['kind', 'reason'] as const,
    registers: [this.registry],
  });

  readonly reconcileDuration = new Histogram({
    name: 'hub_broker_operator_reconcile_duration_seconds',
    help: 'Time to reconcile one object.',
    labelNames: ['kind'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  readonly queueDepth = new Gauge({
    name: 'hub_broker_operator_queue_depth',
    help: 'Keys waiting in the work queue.',
    registers: [this.registry],
  });

  readonly queueRetries = new Counter({
    name: 'hub_broker_operator_queue_retries_total',
    help: 'Keys put back in the queue with backoff after a failure.',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  readonly informerRestarts = new Counter({
    name: 'hub_broker_operator_informer_restarts_total',
    help: 'List/watch restarts by resource and cause (error, gone).',
    labelNames: ['resource', 'cause'] as const,
    registers: [this.registry],
  });

  readonly leader = new Gauge({
    name: 'hub_broker_operator_leader',
    help: '1 while this instance holds the leader lease.',
    registers: [this.registry],
  });

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics !== false) collectProcessMetrics(this.registry, 'hub_broker_operator_');
  }
}
