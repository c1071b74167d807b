/**
 * Every metric the hub, the agent and the operator expose passes `promtool check metrics`
 * (Prometheus' own lint: names, suffixes, help, types). Each metric is given a value first, so
 * that labelled series that would show only after traffic are checked too. promtool comes from
 * Debian's `prometheus` package (.ci/run installs it).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { Counter, Gauge, Histogram, Summary, type Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { AgentMetrics } from '../../agent/metrics.js';
import { createMetrics } from '../../hub/metrics.js';
import { OperatorMetrics } from '../../operator/metrics.js';

function promtool(): string {
  try {
    execFileSync('promtool', ['--version'], { stdio: 'ignore' });
    return 'promtool';
  } catch {
    throw new Error('promtool is not installed: apt-get install prometheus (as .ci/run does)');
  }
}

/** Gives every metric of the registry one value, with a value for each of its labels. */
function touchAll(registry: Registry): void {
  for (const m of registry.getMetricsAsArray()) {
    const names = (m as unknown as { labelNames?: string[] }).labelNames ?? [];
    const labels = Object.fromEntries(names.map((l) => [l, 'x']));
    if (m instanceof Counter) m.inc(labels);
    else if (m instanceof Gauge) m.set(labels, 1);
    else if (m instanceof Histogram || m instanceof Summary) m.observe(labels, 0.1);
  }
}

async function lint(registry: Registry): Promise<{ status: number | null; output: string }> {
  touchAll(registry);
  const text = await registry.metrics();
  const r = spawnSync(promtool(), ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

describe('promtool check metrics', () => {
  it('passes for the hub', async () => {
    expect(await lint(createMetrics('lint').registry)).toEqual({ status: 0, output: '' });
  });

  it('passes for the agent', async () => {
    expect(await lint(new AgentMetrics({ tenant: 't', branch: 'b' }).registry)).toEqual({ status: 0, output: '' });
  });

  it('passes for the operator', async () => {
    expect(await lint(new OperatorMetrics().registry)).toEqual({ status: 0, output: '' });
  });

  it('fails for a gauge named like a counter (the check can fail)', async () => {
    const { registry } = createMetrics('lint-bad');
    new Gauge({ name: 'hub_broker_things_total', help: 'a gauge named like a counter', registers: [registry] });
    const r = await lint(registry);
    expect(r.status).not.toBe(0);
    expect(r.output).toContain('hub_broker_things_total non-counter metrics should not have "_total" suffix');
  });
});
