/**
 * prom-client's process and Node.js metrics, minus the three gauges whose names end in `_total`
 * (`nodejs_active_{handles,requests,resources}_total`): Prometheus keeps that suffix for
 * counters, and `promtool check metrics` refuses them. The same figures stay, by type, in
 * `nodejs_active_handles`, `nodejs_active_requests` and `nodejs_active_resources` (sum them).
 */
import { collectDefaultMetrics, type Registry } from 'prom-client';

const GAUGES_NAMED_LIKE_COUNTERS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export function collectProcessMetrics(register: Registry, prefix = ''): void {
  collectDefaultMetrics({ register, prefix });
  for (const name of GAUGES_NAMED_LIKE_COUNTERS) register.removeSingleMetric(`${prefix}${name}`);
}
