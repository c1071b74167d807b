/**
 * The hub's configuration: one typed object built from a YAML file (`--config`), then the
 * environment, then command-line flags. Every setting, its environment variable, default and
 * meaning is in `SETTINGS`, which the README's reference table is written from.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parse as parseYaml } from 'yaml';

export interface JwtKey {
  readonly kid: string;
  readonly secret: Uint8Array;
}

export interface Rate {
  readonly perSecond: number;
  readonly burst: number;
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface HubConfig {
  readonly databaseUrl: string;
  readonly databasePoolSize: number;
  /** Absent: single-instance memory engine. */
  readonly redisUrl: string | undefined;
  /** Instead of REDIS_URL: the primary named `redisSentinelName`, found through these sentinels. */
  readonly redisSentinels: readonly { readonly host: string; readonly port: number }[] | undefined;
  readonly redisSentinelName: string | undefined;
  /** The primary's and replicas' password when found through sentinels. */
  readonly redisPassword: string | undefined;
  readonly redisSentinelPassword: string | undefined;
  readonly redisPrefix: string;
  readonly host: string;
  readonly port: number;
  /** Absent: the admin API is disabled. */
  readonly adminToken: string | undefined;
  /** The first key signs; every key verifies. */
  readonly jwtKeys: readonly JwtKey[];
  readonly instanceId: string;
  readonly tlsCertFile: string | undefined;
  readonly tlsKeyFile: string | undefined;
  readonly logLevel: LogLevel;
  readonly tokenTtlSeconds: number;
  readonly maxFrameBytes: number;
  readonly maxChangesPerBatch: number;
  /** A change stamped further ahead of the hub's clock is refused (`clock_ahead`). */
  readonly maxClockSkewMs: number;
  readonly maxConnections: number;
  readonly tenantRate: Rate | undefined;
  readonly branchRate: Rate | undefined;
  readonly authRate: Rate | undefined;
  readonly retentionMaxAgeSeconds: number;
  readonly retentionMaxEntries: number;
  readonly sendPauseBytes: number;
  readonly sendCloseBytes: number;
  readonly maxUnappliedEntries: number;
  readonly deliveryPageEntries: number;
  readonly heartbeatMs: number;
  readonly corsOrigins: readonly string[];
  readonly argon2MemoryKib: number;
  readonly argon2TimeCost: number;
  readonly keyGraceSeconds: number;
  readonly perMessageDeflate: boolean;
  /** Accept the JWT as `?access_token=` on /ws (clients that cannot set headers); off, since query strings reach access logs. */
  readonly wsQueryToken: boolean;
  readonly trustProxy: boolean;
  readonly maxViolations: number;
  readonly snapshotConcurrency: number;
  readonly snapshotChunkRows: number;
  readonly snapshotWindow: number;
  readonly maintenanceIntervalMs: number;
  readonly pollIntervalMs: number;
  readonly statusResyncMs: number;
  readonly probeIntervalMs: number;
  readonly shutdownTimeoutMs: number;
}

/** Exit code for a bad or missing setting (EX_CONFIG from sysexits.h). */
export const EXIT_CONFIG = 78;

/** A setting that cannot be used; the message names it and says why, on one line. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly setting: string,
    reason: string,
  ) {
    super(`${setting}: ${reason}`);
  }
}

type Parser<T> = (raw: unknown) => T;

export interface Setting {
  /** Key in the YAML file and in `HubConfig`. */
  readonly key: keyof HubConfig;
  readonly env: string;
  /** Command-line flag, e.g. `--port`. */
  readonly flag: string;
  /** Default as shown in the docs; `undefined` = required or absent. */
  readonly defaultText: string;
  readonly description: string;
  readonly required?: boolean;
  readonly secret?: boolean;
}

interface SettingDef<K extends keyof HubConfig> extends Setting {
  readonly key: K;
  readonly default: () => HubConfig[K];
  readonly parse: Parser<HubConfig[K]>;
}

const MIB = 1024 * 1024;

// ------------------------------------------------------------------ parsers (raw → typed or throw a reason)

class Reason extends Error {}

function str(raw: unknown): string {
  if (typeof raw === 'number' || typeof raw === 'boolean') return String(raw);
  if (typeof raw !== 'string') throw new Reason('must be a string');
  return raw.trim();
}

function nonEmpty(raw: unknown): string {
  const s = str(raw);
  if (s === '') throw new Reason('must not be empty');
  return s;
}

function int(min: number, max = Number.MAX_SAFE_INTEGER): Parser<number> {
  return (raw) => {
    const s = str(raw).replace(/_/g, '');
    if (!/^-?\d+$/.test(s)) throw new Reason(`must be an integer between ${min} and ${max}`);
    const n = Number(s);
    if (n < min || n > max) throw new Reason(`must be an integer between ${min} and ${max}`);
    return n;
  };
}

function bool(raw: unknown): boolean {
  if (typeof raw === 'boolean') return raw;
  const s = str(raw).toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(s)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(s)) return false;
  throw new Reason('must be true or false');
}

function optional<T>(p: Parser<T>): Parser<T | undefined> {
  return (raw) => (raw === undefined || raw === null || str(raw) === '' ? undefined : p(raw));
}

function url(...schemes: string[]): Parser<string> {
  return (raw) => {
    const s = nonEmpty(raw);
    let u: URL;
    try {
      u = new URL(s);
    } catch {
      throw new Reason(`must be a URL (${schemes.join(' or ')})`);
    }
    if (!schemes.includes(u.protocol.replace(/:$/, ''))) throw new Reason(`must be a URL (${schemes.join(' or ')})`);
    return s;
  };
}

/** `perSecond:burst`, e.g. `100:200`; `off` disables the limit. */
export function parseRate(raw: unknown): Rate | undefined {
  const s = str(raw);
  if (s === '' || s.toLowerCase() === 'off') return undefined;
  const m = /^(\d+(?:\.\d+)?):(\d+)$/.exec(s);
  const perSecond = m ? Number(m[1]) : NaN;
  const burst = m ? Number(m[2]) : NaN;
  if (!(perSecond > 0) || !Number.isInteger(burst) || burst < 1) {
    throw new Reason('must be "perSecond:burst" (e.g. 100:200) or "off"');
  }
  return { perSecond, burst };
}

/** `kid:secret[,kid:secret…]`; each secret base64url of at least 32 bytes. */
export function parseJwtKeys(raw: unknown): JwtKey[] {
  const items = Array.isArray(raw) ? raw.map(str) : nonEmpty(raw).split(',');
  const keys: JwtKey[] = [];
  for (const item of items.map((i) => i.trim()).filter((i) => i !== '')) {
    const colon = item.indexOf(':');
    const kid = colon > 0 ? item.slice(0, colon) : '';
    const secret = colon > 0 ? item.slice(colon + 1) : '';
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(kid)) throw new Reason('each key must be "kid:secret" with a kid of [A-Za-z0-9._-]');
    if (!/^[A-Za-z0-9_-]+={0,2}$/.test(secret)) throw new Reason(`key ${kid}: secret must be base64url`);
    const bytes = Buffer.from(secret, 'base64url');
    if (bytes.length < 32) throw new Reason(`key ${kid}: secret must decode to at least 32 bytes`);
    if (keys.some((k) => k.kid === kid)) throw new Reason(`key ${kid} is listed twice`);
    keys.push({ kid, secret: new Uint8Array(bytes) });
  }
  if (keys.length === 0) throw new Reason('needs at least one "kid:secret"');
  return keys;
}

/** `host:port,host:port` (IPv6 in brackets: `[::1]:26379`). */
function hostPorts(raw: unknown): { host: string; port: number }[] {
  const out = list(raw).map((item) => {
    const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(item);
    const port = Number(m?.[2]);
    if (!m || port < 1 || port > 65535) throw new Reason(`"${item}" is not host:port`);
    return { host: (m[1] as string).replace(/^\[(.*)\]$/, '$1'), port };
  });
  if (out.length === 0) throw new Reason('needs at least one host:port');
  return out;
}

function list(raw: unknown): string[] {
  const items = Array.isArray(raw) ? raw.map(str) : str(raw).split(',');
  return items.map((s) => s.trim()).filter((s) => s !== '');
}

function logLevel(raw: unknown): LogLevel {
  const s = str(raw).toLowerCase();
  const levels: LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
  if (!levels.includes(s as LogLevel)) throw new Reason(`must be one of ${levels.join(', ')}`);
  return s as LogLevel;
}

function generatedInstanceId(): string {
  const host = hostname().toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 40);
  return `${host}-${randomBytes(3).toString('hex')}`;
}

// ------------------------------------------------------------------ the table

function def<K extends keyof HubConfig>(
  key: K,
  env: string,
  defaultValue: () => HubConfig[K],
  defaultText: string,
  parse: Parser<HubConfig[K]>,
  description: string,
  extra: { required?: boolean; secret?: boolean } = {},
): SettingDef<K> {
  const flag = `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  return { key, env, flag, default: defaultValue, defaultText, parse, description, ...extra };
}

const none = () => undefined;
const REQUIRED = () => {
  throw new Reason('is required');
};

const DEFS = [
  def('databaseUrl', 'DATABASE_URL', REQUIRED, '(required)', url('postgres', 'postgresql'), 'PostgreSQL URL of the hub database.', { required: true, secret: true }),
  def('databasePoolSize', 'HUB_DATABASE_POOL_SIZE', () => 10, '10', int(2, 1000), 'Connections in the PostgreSQL pool.'),
  def('redisUrl', 'REDIS_URL', none, '(none: memory engine, one instance)', optional(url('redis', 'rediss')), 'Redis URL; set it to run several hub instances.', { secret: true }),
  def('redisSentinels', 'REDIS_SENTINELS', none, '(none)', optional(hostPorts), 'Redis Sentinel `host:port,…`; with REDIS_SENTINEL_NAME, instead of REDIS_URL (docs/operations.md "Redis Sentinel").'),
  def('redisSentinelName', 'REDIS_SENTINEL_NAME', none, '(none)', optional(nonEmpty), 'Name of the primary the sentinels watch.'),
  def('redisPassword', 'REDIS_PASSWORD', none, '(none)', optional(nonEmpty), 'Password of the Redis primary and replicas found through sentinels.', { secret: true }),
  def('redisSentinelPassword', 'REDIS_SENTINEL_PASSWORD', none, '(none)', optional(nonEmpty), 'Password of the sentinels themselves.', { secret: true }),
  def('redisPrefix', 'REDIS_PREFIX', () => 'hb:', 'hb:', nonEmpty, 'Prefix of every Redis key and channel.'),
  def('host', 'HUB_HOST', () => '0.0.0.0', '0.0.0.0', nonEmpty, 'Address to listen on.'),
  def('port', 'HUB_PORT', () => 8080, '8080', int(0, 65535), 'Port to listen on (0 = any free port).'),
  def('adminToken', 'HUB_ADMIN_TOKEN', none, '(none: admin API disabled)', optional(nonEmpty), 'Bearer token of the admin API under /admin/.', { secret: true }),
  def('jwtKeys', 'HUB_JWT_KEYS', REQUIRED, '(required)', parseJwtKeys, 'JWT signing keys, `kid:secret[,kid:secret…]`, each secret base64url of ≥ 32 bytes; the first signs, all verify (rotation).', { required: true, secret: true }),
  def('instanceId', 'HUB_INSTANCE_ID', generatedInstanceId, '(hostname + random)', nonEmpty, 'Name of this instance in the location registry and in hello.'),
  def('tlsCertFile', 'HUB_TLS_CERT_FILE', none, '(none: plain http/ws)', optional(nonEmpty), 'PEM certificate chain; with the key, serve https/wss. Reloaded when the file changes.'),
  def('tlsKeyFile', 'HUB_TLS_KEY_FILE', none, '(none)', optional(nonEmpty), 'PEM private key for HUB_TLS_CERT_FILE.'),
  def('logLevel', 'HUB_LOG_LEVEL', () => 'info' as LogLevel, 'info', logLevel, 'pino log level.'),
  def('tokenTtlSeconds', 'HUB_TOKEN_TTL_SECONDS', () => 900, '900', int(10, 86_400), 'Lifetime of a JWT issued by /auth/token.'),
  def('maxFrameBytes', 'HUB_MAX_FRAME_BYTES', () => MIB, '1048576', int(1024, 256 * MIB), 'Largest WebSocket frame accepted (bigger: close 1009).'),
  def('maxChangesPerBatch', 'HUB_MAX_CHANGES_PER_BATCH', () => 1000, '1000', int(1, 100_000), 'Most changes in one sync.batch (more: error batch_too_large).'),
  def('maxClockSkewMs', 'HUB_MAX_CLOCK_SKEW_MS', () => 300_000, '300000', int(1000, 7 * 24 * 3_600_000), 'A change whose HLC is further ahead of the hub\'s clock is refused (error clock_ahead): a branch clock far ahead would pin its rows\' versions there.'),
  def('maxConnections', 'HUB_MAX_CONNECTIONS', () => 10_000, '10000', int(1, 10_000_000), 'Most WebSocket connections on this instance (more: HTTP 503 on upgrade).'),
  def('tenantRate', 'HUB_TENANT_RATE', () => ({ perSecond: 2000, burst: 4000 }), '2000:4000', parseRate, 'Default frames per second and burst for a tenant without its own rate limit, or `off`.'),
  def('branchRate', 'HUB_BRANCH_RATE', () => ({ perSecond: 500, burst: 1000 }), '500:1000', parseRate, 'Frames per second and burst per branch, or `off`.'),
  def('authRate', 'HUB_AUTH_RATE', () => ({ perSecond: 10, burst: 50 }), '10:50', parseRate, 'POST /auth/token attempts per second and burst per source address, or `off` (more: HTTP 429).'),
  def('retentionMaxAgeSeconds', 'HUB_RETENTION_MAX_AGE_SECONDS', () => 7 * 86_400, '604800', int(0), 'Compacted log entries older than this are pruned even if a branch has not applied them (0 = no limit).'),
  def('retentionMaxEntries', 'HUB_RETENTION_MAX_ENTRIES', () => 0, '0', int(0), 'Most log entries kept per tenant; older compacted ones are pruned (0 = no limit).'),
  def('sendPauseBytes', 'HUB_SEND_PAUSE_BYTES', () => 512 * 1024, '524288', int(1024), 'Stop pushing to a socket whose send buffer holds more than this; resume from the log when drained.'),
  def('sendCloseBytes', 'HUB_SEND_CLOSE_BYTES', () => 8 * MIB, '8388608', int(2048), 'Close a socket whose send buffer holds more than this (close 4008).'),
  def('maxUnappliedEntries', 'HUB_MAX_UNAPPLIED_ENTRIES', () => 20_000, '20000', int(1), 'Stop pushing to a branch with this many delivered entries it has not yet applied.'),
  def('deliveryPageEntries', 'HUB_DELIVERY_PAGE_ENTRIES', () => 500, '500', int(1, 100_000), 'Most log entries in one sync.deliver read from the log.'),
  def('heartbeatMs', 'HUB_HEARTBEAT_MS', () => 30_000, '30000', int(100, 3_600_000), 'WebSocket ping interval; a socket that misses a pong is terminated.'),
  def('corsOrigins', 'HUB_CORS_ORIGINS', () => [], '(none)', list, 'Comma-separated origins allowed by CORS, or `*`.'),
  def('argon2MemoryKib', 'HUB_ARGON2_MEMORY_KIB', () => 19_456, '19456', int(64, 4 * 1024 * 1024), 'argon2id memory cost of API key hashes.'),
  def('argon2TimeCost', 'HUB_ARGON2_TIME_COST', () => 2, '2', int(1, 100), 'argon2id passes of API key hashes.'),
  def('keyGraceSeconds', 'HUB_KEY_GRACE_SECONDS', () => 3600, '3600', int(0), 'How long the previous API key keeps working after a rotation.'),
  def('perMessageDeflate', 'HUB_PER_MESSAGE_DEFLATE', () => false, 'false', bool, 'Negotiate WebSocket compression (costs hundreds of KB per socket).'),
  def('wsQueryToken', 'HUB_WS_QUERY_TOKEN', () => false, 'false', bool, 'Also accept the JWT as the query parameter access_token on /ws, for clients that cannot set headers. Off: query strings end up in proxy and ingress access logs.'),
  def('trustProxy', 'HUB_TRUST_PROXY', () => false, 'false', bool, 'Take the source address from X-Forwarded-For (behind an ingress).'),
  def('maxViolations', 'HUB_MAX_VIOLATIONS', () => 50, '50', int(1), 'Invalid frames tolerated per connection (refilled one per second) before close 4029.'),
  def('snapshotConcurrency', 'HUB_SNAPSHOT_CONCURRENCY', () => 2, '2', int(1, 1000), 'Snapshots served at once by this instance; more wait in line.'),
  def('snapshotChunkRows', 'HUB_SNAPSHOT_CHUNK_ROWS', () => 500, '500', int(1, 100_000), 'Row versions per snapshot.chunk.'),
  def('snapshotWindow', 'HUB_SNAPSHOT_WINDOW', () => 4, '4', int(1, 1000), 'Snapshot chunks in flight before the agent acknowledges.'),
  def('maintenanceIntervalMs', 'HUB_MAINTENANCE_INTERVAL_MS', () => 10_000, '10000', int(100), 'How often compaction and retention run.'),
  def('pollIntervalMs', 'HUB_POLL_INTERVAL_MS', () => 5000, '5000', int(50), 'How often live connections check the log head, in case a notification was lost.'),
  def('statusResyncMs', 'HUB_STATUS_RESYNC_MS', () => 30_000, '30000', int(100), 'How often tenant and branch status is re-read, in case a control notification was lost.'),
  def('probeIntervalMs', 'HUB_PROBE_INTERVAL_MS', () => 5000, '5000', int(50), 'How often the Redis pub/sub self-probe runs (/ready fails when it does not come back).'),
  def('shutdownTimeoutMs', 'HUB_SHUTDOWN_TIMEOUT_MS', () => 10_000, '10000', int(0), 'How long a graceful shutdown waits for in-flight work and closing sockets.'),
] as const;

/** Every setting, for docs and `--help`. */
export const SETTINGS: readonly Setting[] = DEFS;

// ------------------------------------------------------------------ loading

export interface ConfigSources {
  /** `process.env` or a test's own map. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Command-line flags after the command name. */
  readonly argv?: readonly string[];
  /** Values already parsed (tests); they win over everything else. */
  readonly overrides?: Partial<HubConfig>;
}

/** `--config file` and `--name value` / `--name=value` pairs. Throws ConfigError on unknown flags. */
export function parseFlags(argv: readonly string[]): { configFile: string | undefined; values: Map<keyof HubConfig, string> } {
  const byFlag = new Map(DEFS.map((d) => [d.flag, d.key as keyof HubConfig]));
  const values = new Map<keyof HubConfig, string>();
  let configFile: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const inline = eq > 0 ? arg.slice(eq + 1) : undefined;
    const take = (): string => {
      if (inline !== undefined) return inline;
      const next = argv[i + 1];
      if (next === undefined) throw new ConfigError(name, 'needs a value');
      i++;
      return next;
    };
    if (name === '--config') {
      configFile = take();
      continue;
    }
    const key = byFlag.get(name);
    if (!key) throw new ConfigError(name, 'unknown option (see --help)');
    values.set(key, take());
  }
  return { configFile, values };
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('--config', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (err) {
    throw new ConfigError('--config', `${path} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) throw new ConfigError('--config', `${path} must hold a mapping of settings`);
  const known = new Set<string>(DEFS.map((d) => d.key));
  for (const k of Object.keys(data)) {
    if (!known.has(k)) throw new ConfigError(`${path}: ${k}`, 'unknown setting');
  }
  return data as Record<string, unknown>;
}

/**
 * Builds the configuration: defaults, then the file named by `--config`, then the environment,
 * then flags. Throws `ConfigError` naming the first bad or missing setting.
 */
export function loadConfig(sources: ConfigSources = {}): HubConfig {
  const env = sources.env ?? process.env;
  const { configFile, values: flags } = parseFlags(sources.argv ?? []);
  const file = configFile ? readConfigFile(configFile) : {};
  const overrides = (sources.overrides ?? {}) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const d of DEFS) {
    if (d.key in overrides) {
      out[d.key] = overrides[d.key];
      continue;
    }
    // The last source that sets a value wins; an empty environment variable counts as unset.
    let raw: unknown;
    let name: string = d.env;
    if (file[d.key] !== undefined && file[d.key] !== null) {
      raw = file[d.key];
      name = `${configFile}: ${d.key}`;
    }
    const fromEnv = env[d.env];
    if (fromEnv !== undefined && fromEnv !== '') {
      raw = fromEnv;
      name = d.env;
    }
    if (flags.has(d.key)) {
      raw = flags.get(d.key);
      name = d.flag;
    }
    try {
      out[d.key] = raw === undefined ? d.default() : (d.parse as Parser<unknown>)(raw);
    } catch (err) {
      if (err instanceof Reason) throw new ConfigError(raw === undefined ? d.env : name, err.message);
      throw err;
    }
  }
  const config = out as unknown as HubConfig;
  checkConsistency(config);
  return config;
}

function checkConsistency(c: HubConfig): void {
  if ((c.tlsCertFile === undefined) !== (c.tlsKeyFile === undefined)) {
    throw new ConfigError(c.tlsCertFile ? 'HUB_TLS_KEY_FILE' : 'HUB_TLS_CERT_FILE', 'TLS needs both a certificate and a key file');
  }
  if (c.sendCloseBytes <= c.sendPauseBytes) {
    throw new ConfigError('HUB_SEND_CLOSE_BYTES', `must be larger than HUB_SEND_PAUSE_BYTES (${c.sendPauseBytes})`);
  }
  if (c.redisSentinels && c.redisUrl) throw new ConfigError('REDIS_SENTINELS', 'set REDIS_URL or REDIS_SENTINELS, not both');
  if (c.redisSentinels && !c.redisSentinelName) throw new ConfigError('REDIS_SENTINEL_NAME', 'is required with REDIS_SENTINELS');
  if (!c.redisSentinels && (c.redisSentinelName || c.redisPassword || c.redisSentinelPassword)) {
    throw new ConfigError('REDIS_SENTINELS', 'is required with REDIS_SENTINEL_NAME, REDIS_PASSWORD and REDIS_SENTINEL_PASSWORD (with REDIS_URL, put the password in the URL)');
  }
  if (!/^[A-Za-z0-9._:-]{1,128}$/.test(c.instanceId)) {
    throw new ConfigError('HUB_INSTANCE_ID', 'must be 1-128 characters of [A-Za-z0-9._:-]');
  }
}

/** Markdown table of every setting, for the README. */
export function settingsTable(): string {
  const rows = SETTINGS.map((s) => `| \`${s.env}\` | \`${s.key}\` / \`${s.flag}\` | ${s.defaultText} | ${s.description} |`);
  return ['| environment | file key / flag | default | meaning |', '|---|---|---|---|', ...rows].join('\n');
}
