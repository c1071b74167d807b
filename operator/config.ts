/**
 * The operator's configuration: one typed object with every default here, read from the
 * environment (what the chart sets), then flags (`hub-broker operator --help`).
 */
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';

export interface OperatorConfig {
  /** Namespace of the leader-election Lease: the operator's own (POD_NAMESPACE). */
  readonly namespace: string;
  /** Reconcile only this namespace; '' for all. */
  readonly watchNamespace: string;
  /** This instance's name in the Lease: the pod name. */
  readonly identity: string;
  readonly leaderElection: boolean;
  readonly leaseName: string;
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
  /** Image for Hubs that name none. */
  readonly hubImage: string;
  readonly workers: number;
  readonly resyncMs: number;
  readonly backoffBaseMs: number;
  readonly backoffCapMs: number;
  readonly metricsHost: string;
  readonly metricsPort: number;
  readonly logLevel: string;
  /** Time allowed for reconciles in flight at shutdown. */
  readonly shutdownTimeoutMs: number;
}

export const DEFAULTS: OperatorConfig = {
  namespace: 'default',
  watchNamespace: '',
  identity: hostname(),
  leaderElection: true,
  leaseName: 'hub-broker-operator',
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_000,
  hubImage: 'ghcr.io/hub-broker/hub-broker:latest',
  workers: 4,
  resyncMs: 300_000,
  backoffBaseMs: 1_000,
  backoffCapMs: 300_000,
  metricsHost: '0.0.0.0',
  metricsPort: 8080,
  logLevel: 'info',
  shutdownTimeoutMs: 20_000,
};

/** Environment variable → field; numbers are parsed, booleans accept true/false. */
const ENV: Record<string, keyof OperatorConfig> = {
  POD_NAMESPACE: 'namespace',
  OPERATOR_WATCH_NAMESPACE: 'watchNamespace',
  POD_NAME: 'identity',
  OPERATOR_LEADER_ELECTION: 'leaderElection',
  OPERATOR_LEASE_NAME: 'leaseName',
  OPERATOR_HUB_IMAGE: 'hubImage',
  OPERATOR_WORKERS: 'workers',
  OPERATOR_RESYNC_SECONDS: 'resyncMs',
  OPERATOR_METRICS_PORT: 'metricsPort',
  OPERATOR_LOG_LEVEL: 'logLevel',
};

const FLAGS = {
  namespace: { type: 'string' },
  'watch-namespace': { type: 'string' },
  identity: { type: 'string' },
  'leader-election': { type: 'string' },
  'lease-name': { type: 'string' },
  'hub-image': { type: 'string' },
  workers: { type: 'string' },
  'resync-seconds': { type: 'string' },
  'metrics-port': { type: 'string' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const FLAG_FIELD: Record<string, keyof OperatorConfig> = {
  namespace: 'namespace',
  'watch-namespace': 'watchNamespace',
  identity: 'identity',
  'leader-election': 'leaderElection',
  'lease-name': 'leaseName',
  'hub-image': 'hubImage',
  workers: 'workers',
  'resync-seconds': 'resyncMs',
  'metrics-port': 'metricsPort',
  'log-level': 'logLevel',
};

export const USAGE = `Usage: hub-broker operator [options]

Runs the Kubernetes operator for Hub, Tenant and Branch resources (hubbroker.io/v1alpha1).
Connects with the in-cluster service account, or KUBECONFIG / ~/.kube/config.

Options (environment variable in brackets):
  --namespace NS          namespace of the leader-election Lease [POD_NAMESPACE] (default: default)
  --watch-namespace NS    reconcile only this namespace [OPERATOR_WATCH_NAMESPACE] (default: all)
  --identity NAME         name of this instance in the Lease [POD_NAME] (default: host name)
  --leader-election B     true|false [OPERATOR_LEADER_ELECTION] (default: true)
  --lease-name NAME       [OPERATOR_LEASE_NAME] (default: hub-broker-operator)
  --hub-image IMAGE       image for Hubs that set no spec.image [OPERATOR_HUB_IMAGE]
  --workers N             concurrent reconciles [OPERATOR_WORKERS] (default: 4)
  --resync-seconds S      relist and reconcile everything this often [OPERATOR_RESYNC_SECONDS] (default: 300)
  --metrics-port PORT     /metrics, /healthz, /readyz [OPERATOR_METRICS_PORT] (default: 8080)
  --log-level LEVEL       trace|debug|info|warn|error [OPERATOR_LOG_LEVEL] (default: info)
`;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

function coerce(field: keyof OperatorConfig, raw: string, source: string): OperatorConfig[keyof OperatorConfig] {
  const def = DEFAULTS[field];
  if (typeof def === 'boolean') {
    if (raw === 'true' || raw === '1') return true;
    if (raw === 'false' || raw === '0') return false;
    throw new ConfigError(`${source}: expected true or false, got "${raw}"`);
  }
  if (typeof def === 'number') {
    const n = Number(raw);
    if (!Number.isFinite(n) || n < 0 || (field !== 'resyncMs' && !Number.isInteger(n))) throw new ConfigError(`${source}: expected a number, got "${raw}"`);
    return field === 'resyncMs' ? n * 1000 : n;
  }
  return raw;
}

/** Defaults, then the environment, then flags. Throws ConfigError on a bad value. */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): { config: OperatorConfig; help: boolean } {
  const out: Record<string, unknown> = { ...DEFAULTS };
  for (const [name, field] of Object.entries(ENV)) {
    const raw = env[name];
    if (raw !== undefined && raw !== '') out[field] = coerce(field, raw, name);
  }
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: FLAGS, allowPositionals: false, strict: true });
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  for (const [flag, value] of Object.entries(parsed.values)) {
    const field = FLAG_FIELD[flag];
    if (field && typeof value === 'string') out[field] = coerce(field, value, `--${flag}`);
  }
  const config = out as unknown as OperatorConfig;
  if (config.workers < 1) throw new ConfigError('workers must be at least 1');
  return { config, help: parsed.values.help === true };
}
