/**
 * The agent's configuration: one typed object built from a YAML file, then the environment,
 * then command-line flags (later sources win). Every setting, its default and its
 * documentation live in `SETTINGS`; the README's reference table is checked against it.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { StrategyNameSchema, type StrategyName } from '../protocol/messages.js';

export type Codec = 'json' | 'msgpack';
export type Compression = 'off' | 'permessage-deflate';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface TableConfig {
  /** `schema.table`, unquoted, as it appears in changes on the wire. */
  readonly name: string;
  /** Overrides the tenant's conflict strategy for this table (must be the same at every branch). */
  readonly conflictStrategy?: StrategyName;
  /**
   * `column`: concurrent updates of different columns both survive (docs/sync-semantics.md
   * "Column-level tables and counters"). Must be the same at every branch.
   */
  readonly merge?: 'row' | 'column';
  /** Counter columns: changes travel as differences and add up. Makes the table column-level. */
  readonly additive?: readonly string[];
}

export interface AgentConfig {
  readonly configFile: string | undefined;
  readonly hubUrl: string;
  readonly tenantId: string;
  readonly branchId: string;
  readonly apiKey: string;
  readonly databaseUrl: string;
  readonly tables: readonly TableConfig[];
  readonly batchSize: number;
  readonly pollMs: number;
  readonly caFile: string | undefined;
  readonly allowInsecure: boolean;
  readonly codec: Codec;
  readonly compression: Compression;
  readonly metricsPort: number | undefined;
  readonly logLevel: LogLevel;
  readonly maxForwardSkewMs: number;
  readonly maxInFlightBatches: number;
  readonly applyMaxRows: number;
  readonly applyLockTimeoutMs: number;
}

/** A setting that is missing or invalid; the message is one line naming it. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly setting: string,
    message: string,
  ) {
    super(message);
  }
}

type Key = keyof AgentConfig;

export interface Setting {
  readonly key: Key;
  /** Environment variable; undefined for file-only settings. */
  readonly env: string | undefined;
  /** Command-line flag; undefined where a flag would be unsafe (the API key). */
  readonly flag: string | undefined;
  /** Key in the YAML file; undefined where the file must not hold the value. */
  readonly file: string | undefined;
  /** Default as documented; undefined = required (or optional without default, see `required`). */
  readonly default: string | undefined;
  readonly required: boolean;
  readonly description: string;
}

/** Every setting, in the order of the README's reference table. */
export const SETTINGS: readonly Setting[] = [
  { key: 'configFile', env: 'AGENT_CONFIG', flag: '--config', file: undefined, default: undefined, required: false, description: 'YAML file with any of the settings below (file keys in camelCase); environment and flags override it' },
  { key: 'hubUrl', env: 'HUB_URL', flag: '--hub-url', file: 'hubUrl', default: undefined, required: true, description: 'base URL of the hub: `https://…` (or `wss://…`); the agent uses `/auth/token` and `/ws` under it' },
  { key: 'tenantId', env: 'TENANT_ID', flag: '--tenant', file: 'tenantId', default: undefined, required: true, description: 'tenant id (DNS-1123 label)' },
  { key: 'branchId', env: 'BRANCH_ID', flag: '--branch', file: 'branchId', default: undefined, required: true, description: 'branch id (DNS-1123 label); written into the capture triggers at install' },
  { key: 'apiKey', env: 'API_KEY', flag: undefined, file: undefined, default: undefined, required: true, description: 'the branch API key; never accepted on the command line or in the config file, never logged' },
  { key: 'apiKey', env: 'API_KEY_FILE', flag: undefined, file: 'apiKeyFile', default: undefined, required: false, description: 'file holding the API key (e.g. a mounted Secret); used when `API_KEY` is not set' },
  { key: 'databaseUrl', env: 'DATABASE_URL', flag: '--database-url', file: 'databaseUrl', default: undefined, required: true, description: 'PostgreSQL URL of the branch database' },
  { key: 'tables', env: 'AGENT_TABLES', flag: '--tables', file: 'tables', default: undefined, required: true, description: 'tables to sync: comma list of `schema.table[:strategy][:row|column][:additive=col/col]`; in the file a list of `{name, conflictStrategy, merge, additive}`. List them in the order your application updates them (parents first): applies lock rows in this order' },
  { key: 'batchSize', env: 'AGENT_BATCH_SIZE', flag: '--batch-size', file: 'batchSize', default: '100', required: false, description: 'most changes per `sync.batch` (a larger source transaction still goes whole, up to the hub limit)' },
  { key: 'pollMs', env: 'AGENT_POLL_MS', flag: '--poll-ms', file: 'pollMs', default: '2000', required: false, description: 'outbox poll interval in ms, for when NOTIFY does not arrive' },
  { key: 'caFile', env: 'AGENT_CA_FILE', flag: '--ca-file', file: 'caFile', default: undefined, required: false, description: 'PEM file of CA certificates to trust for `https`/`wss`, in addition to Node\'s CA bundle (and `NODE_EXTRA_CA_CERTS`)' },
  { key: 'allowInsecure', env: 'AGENT_ALLOW_INSECURE', flag: '--allow-insecure', file: 'allowInsecure', default: 'false', required: false, description: 'allow plain `http`/`ws` to a hub that is not on loopback' },
  { key: 'codec', env: 'AGENT_CODEC', flag: '--codec', file: 'codec', default: 'msgpack', required: false, description: '`msgpack` (subprotocol `hubsync.v1.msgpack`) or `json` (`hubsync.v1`)' },
  { key: 'compression', env: 'AGENT_COMPRESSION', flag: '--compression', file: 'compression', default: 'off', required: false, description: '`off` or `permessage-deflate`' },
  { key: 'metricsPort', env: 'AGENT_METRICS_PORT', flag: '--metrics-port', file: 'metricsPort', default: undefined, required: false, description: 'serve Prometheus metrics on `:<port>/metrics` (off when unset)' },
  { key: 'logLevel', env: 'LOG_LEVEL', flag: '--log-level', file: 'logLevel', default: 'info', required: false, description: 'pino level: fatal, error, warn, info, debug, trace, silent' },
  { key: 'maxForwardSkewMs', env: 'AGENT_MAX_SKEW_MS', flag: '--max-skew-ms', file: 'maxForwardSkewMs', default: '300000', required: false, description: 'a remote HLC further ahead of the local clock is applied but does not advance the local clock' },
  { key: 'maxInFlightBatches', env: 'AGENT_MAX_IN_FLIGHT', flag: '--max-in-flight', file: 'maxInFlightBatches', default: '4', required: false, description: 'batches sent and not yet acknowledged' },
  { key: 'applyMaxRows', env: 'AGENT_APPLY_MAX_ROWS', flag: '--apply-max-rows', file: 'applyMaxRows', default: '1000', required: false, description: 'most distinct rows one apply transaction writes (whole source transactions; halved while local writers contend)' },
  { key: 'applyLockTimeoutMs', env: 'AGENT_APPLY_LOCK_TIMEOUT_MS', flag: '--apply-lock-timeout-ms', file: 'applyLockTimeoutMs', default: '200', required: false, description: 'longest an apply waits for a row lock before giving way to the local writer and retrying; keep it below the database\'s `deadlock_timeout`' },
];

/** Raw inputs; tests pass their own instead of the process's. */
export interface ConfigSources {
  readonly env?: NodeJS.ProcessEnv;
  readonly argv?: readonly string[];
  readonly readFile?: (path: string) => string;
}

/** What a subcommand needs: `install` needs no hub settings, `status` needs only the database. */
export type Need = 'database' | 'identity' | 'tables' | 'hub';

const IDENT = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const TABLE = /^[^.\s"]{1,63}\.[^.\s"]{1,63}$/;
const LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function settingName(key: Key, source: 'env' | 'flag' | 'file'): string {
  const s = SETTINGS.find((x) => x.key === key && (source !== 'env' || x.env !== 'API_KEY_FILE'));
  if (!s) return key;
  if (source === 'env') return s.env ?? key;
  if (source === 'flag') return s.flag ?? key;
  return `${s.file ?? key} (config file)`;
}

function parseInteger(name: string, raw: unknown, min: number, max: number): number {
  const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^-?\d+$/.test(raw.trim()) ? Number(raw) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(name, `${name}: must be an integer from ${min} to ${max} (got ${JSON.stringify(raw)})`);
  }
  return n;
}

function parseBoolean(name: string, raw: unknown): boolean {
  if (typeof raw === 'boolean') return raw;
  const s = String(raw).trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(s)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(s)) return false;
  throw new ConfigError(name, `${name}: must be true or false (got ${JSON.stringify(raw)})`);
}

function parseString(name: string, raw: unknown): string {
  if (typeof raw !== 'string' && typeof raw !== 'number') {
    throw new ConfigError(name, `${name}: must be a string`);
  }
  return String(raw).trim();
}

function parseStrategy(name: string, raw: unknown): StrategyName {
  const r = StrategyNameSchema.safeParse(raw);
  if (!r.success) {
    throw new ConfigError(name, `${name}: conflict strategy must be last-write-wins or branch-priority (got ${JSON.stringify(raw)})`);
  }
  return r.data;
}

function parseTableName(name: string, raw: unknown): string {
  const s = parseString(name, raw);
  if (!TABLE.test(s)) {
    throw new ConfigError(name, `${name}: table "${s.slice(0, 140)}" must be schema-qualified: schema.table`);
  }
  return s;
}

/**
 * `public.a, public.b:branch-priority, public.c:column, public.stock:additive=qty/reserved`
 * (environment and flag form): after the name, a strategy, a merge mode and counter columns, in
 * any order.
 */
function parseTableList(name: string, raw: string): TableConfig[] {
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((item) => {
      const [table, ...options] = item.split(':');
      const t: { -readonly [K in keyof TableConfig]: TableConfig[K] } = { name: parseTableName(name, table) };
      for (const o of options) {
        if (o === 'row' || o === 'column') t.merge = o;
        else if (o.startsWith('additive=')) t.additive = o.slice('additive='.length).split('/').filter((c) => c !== '');
        else if (t.conflictStrategy === undefined) t.conflictStrategy = parseStrategy(name, o);
        else throw new ConfigError(name, `${name}: "${item}" is not schema.table[:strategy][:row|column][:additive=col/col]`);
      }
      return t;
    });
}

/** The list form of `tables` (inverse of parseTableList). */
export function formatTableList(tables: readonly TableConfig[]): string {
  return tables
    .map((t) =>
      [t.name, t.conflictStrategy, t.merge, t.additive && t.additive.length > 0 ? `additive=${t.additive.join('/')}` : undefined]
        .filter((x) => x !== undefined)
        .join(':'),
    )
    .join(',');
}

/** File form: a list of names or of `{name, conflictStrategy, merge, additive}`. */
function parseTableFile(name: string, raw: unknown): TableConfig[] {
  if (typeof raw === 'string') return parseTableList(name, raw);
  if (!Array.isArray(raw)) throw new ConfigError(name, `${name}: must be a list of tables`);
  return raw.map((item: unknown, i) => {
    const at = `${name}[${i}]`;
    if (typeof item === 'string') return { name: parseTableName(at, item) };
    if (typeof item !== 'object' || item === null) throw new ConfigError(at, `${at}: must be a table name or {name, conflictStrategy, merge, additive}`);
    const o = item as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      if (!['name', 'conflictStrategy', 'merge', 'additive'].includes(k)) throw new ConfigError(at, `${at}: unknown key "${k}"`);
    }
    const t: { -readonly [K in keyof TableConfig]: TableConfig[K] } = { name: parseTableName(`${at}.name`, o.name) };
    if (o.conflictStrategy !== undefined) t.conflictStrategy = parseStrategy(`${at}.conflictStrategy`, o.conflictStrategy);
    if (o.merge !== undefined) {
      if (o.merge !== 'row' && o.merge !== 'column') throw new ConfigError(`${at}.merge`, `${at}.merge: must be row or column (got ${JSON.stringify(o.merge)})`);
      t.merge = o.merge;
    }
    if (o.additive !== undefined) {
      if (!Array.isArray(o.additive) || o.additive.some((c) => typeof c !== 'string' || c === '')) {
        throw new ConfigError(`${at}.additive`, `${at}.additive: must be a list of column names`);
      }
      t.additive = o.additive as string[];
    }
    return t;
  });
}

interface Raw {
  values: Partial<Record<Key, unknown>>;
  names: Partial<Record<Key, string>>;
  apiKeyFile?: { path: string; name: string };
}

function readFlags(argv: readonly string[]): { values: Map<Key, string>; names: Map<Key, string> } {
  const values = new Map<Key, string>();
  const names = new Map<Key, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (!arg.startsWith('--')) throw new ConfigError(arg, `unexpected argument "${arg.slice(0, 80)}"`);
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    if (flag === '--api-key' || flag === '--api-key-file') {
      throw new ConfigError(flag, `${flag}: the API key is never taken from the command line; set API_KEY or API_KEY_FILE`);
    }
    const setting = SETTINGS.find((s) => s.flag === flag);
    if (!setting) throw new ConfigError(flag, `unknown option ${flag.slice(0, 80)} (see --help)`);
    let value: string;
    if (eq !== -1) value = arg.slice(eq + 1);
    else if (setting.key === 'allowInsecure') value = 'true';
    else {
      const next = argv[i + 1];
      if (next === undefined) throw new ConfigError(flag, `${flag}: needs a value`);
      value = next;
      i++;
    }
    values.set(setting.key, value);
    names.set(setting.key, flag);
  }
  return { values, names };
}

/**
 * Builds the configuration. Throws `ConfigError` (one line naming the setting) when a setting
 * is invalid, or missing while one of `needs` requires it.
 */
export function loadConfig(sources: ConfigSources = {}, needs: readonly Need[] = ['database', 'identity', 'tables', 'hub']): AgentConfig {
  const env = sources.env ?? process.env;
  const readFile = sources.readFile ?? ((p: string) => readFileSync(p, 'utf8'));
  const flags = readFlags(sources.argv ?? []);
  const raw: Raw = { values: {}, names: {} };

  const configFile = flags.values.get('configFile') ?? (env.AGENT_CONFIG || undefined);
  if (configFile !== undefined) {
    let doc: unknown;
    try {
      doc = parseYaml(readFile(configFile));
    } catch (err) {
      throw new ConfigError('configFile', `config file ${configFile}: ${(err as Error).message.split('\n')[0]}`);
    }
    if (doc !== null && doc !== undefined) {
      if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError('configFile', `config file ${configFile}: must be a mapping`);
      for (const [k, v] of Object.entries(doc as Record<string, unknown>)) {
        if (k === 'apiKey') {
          throw new ConfigError('apiKey', `apiKey (config file): the API key does not belong in the config file; use API_KEY or apiKeyFile`);
        }
        if (k === 'apiKeyFile') {
          raw.apiKeyFile = { path: parseString('apiKeyFile (config file)', v), name: 'apiKeyFile (config file)' };
          continue;
        }
        const setting = SETTINGS.find((s) => s.file === k);
        if (!setting) throw new ConfigError(k, `config file ${configFile}: unknown setting "${k.slice(0, 60)}"`);
        raw.values[setting.key] = v;
        raw.names[setting.key] = settingName(setting.key, 'file');
      }
    }
  }
  for (const s of SETTINGS) {
    if (s.env === undefined || s.key === 'configFile') continue;
    const v = env[s.env];
    if (v === undefined || v === '') continue;
    if (s.env === 'API_KEY_FILE') {
      raw.apiKeyFile = { path: v, name: 'API_KEY_FILE' };
      continue;
    }
    raw.values[s.key] = v;
    raw.names[s.key] = s.env;
  }
  for (const [key, v] of flags.values) {
    raw.values[key] = v;
    raw.names[key] = flags.names.get(key) ?? key;
  }
  if (raw.values.apiKey === undefined && raw.apiKeyFile !== undefined) {
    let key: string;
    try {
      key = readFile(raw.apiKeyFile.path).trim();
    } catch (err) {
      throw new ConfigError('apiKey', `${raw.apiKeyFile.name}: cannot read ${raw.apiKeyFile.path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    raw.values.apiKey = key;
    raw.names.apiKey = raw.apiKeyFile.name;
  }
  return build(raw, configFile, new Set(needs));
}

function build(raw: Raw, configFile: string | undefined, needs: ReadonlySet<Need>): AgentConfig {
  const name = (k: Key): string => raw.names[k] ?? settingName(k, 'env');
  const get = (k: Key): unknown => raw.values[k];
  const missing = (k: Key, need: Need): never => {
    const s = SETTINGS.find((x) => x.key === k);
    const how = k === 'apiKey' ? 'API_KEY or API_KEY_FILE' : [s?.env, s?.flag].filter(Boolean).join(' or ');
    throw new ConfigError(k, `${s?.env ?? k}: required${need === 'hub' ? ' to connect to the hub' : ''} (set ${how})`);
  };
  const str = (k: Key, need: Need): string => {
    const v = get(k);
    if (v === undefined || v === '') {
      if (needs.has(need)) missing(k, need);
      return '';
    }
    return parseString(name(k), v);
  };

  const hubUrl = str('hubUrl', 'hub');
  const allowInsecure = parseBoolean(name('allowInsecure'), get('allowInsecure') ?? defaultOf('allowInsecure'));
  if (hubUrl !== '') hubEndpoints(hubUrl, allowInsecure, name('hubUrl'));
  const tenantId = str('tenantId', 'identity');
  const branchId = str('branchId', 'identity');
  for (const [k, v] of [['tenantId', tenantId], ['branchId', branchId]] as const) {
    if (v !== '' && (v.length > 63 || !IDENT.test(v))) {
      throw new ConfigError(k, `${name(k)}: must be a DNS-1123 label (lowercase letters, digits, "-"; at most 63)`);
    }
  }
  const apiKey = str('apiKey', 'hub');
  const databaseUrl = str('databaseUrl', 'database');
  if (databaseUrl !== '' && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError('databaseUrl', `${name('databaseUrl')}: must be a postgres:// or postgresql:// URL`);
  }

  const rawTables = get('tables');
  let tables: TableConfig[] = [];
  if (rawTables !== undefined) {
    tables = typeof rawTables === 'string' ? parseTableList(name('tables'), rawTables) : parseTableFile(name('tables'), rawTables);
  }
  if (tables.length === 0 && needs.has('tables')) missing('tables', 'tables');
  const seen = new Set<string>();
  for (const t of tables) {
    if (seen.has(t.name)) throw new ConfigError('tables', `${name('tables')}: table ${t.name} is listed twice`);
    seen.add(t.name);
  }

  const int = (k: Key, min: number, max: number): number =>
    parseInteger(name(k), get(k) ?? defaultOf(k), min, max);
  const codec = String(get('codec') ?? defaultOf('codec')).trim();
  if (codec !== 'json' && codec !== 'msgpack') throw new ConfigError('codec', `${name('codec')}: must be json or msgpack (got ${JSON.stringify(codec)})`);
  const compression = String(get('compression') ?? defaultOf('compression')).trim();
  if (compression !== 'off' && compression !== 'permessage-deflate') {
    throw new ConfigError('compression', `${name('compression')}: must be off or permessage-deflate (got ${JSON.stringify(compression)})`);
  }
  const logLevel = String(get('logLevel') ?? defaultOf('logLevel')).trim() as LogLevel;
  if (!LEVELS.includes(logLevel)) throw new ConfigError('logLevel', `${name('logLevel')}: must be one of ${LEVELS.join(', ')}`);
  const caFile = get('caFile') === undefined ? undefined : parseString(name('caFile'), get('caFile'));
  const metricsPort = get('metricsPort') === undefined ? undefined : parseInteger(name('metricsPort'), get('metricsPort'), 1, 65535);

  return {
    configFile,
    hubUrl,
    tenantId,
    branchId,
    apiKey,
    databaseUrl,
    tables,
    batchSize: int('batchSize', 1, 10_000),
    pollMs: int('pollMs', 10, 3_600_000),
    caFile: caFile === '' ? undefined : caFile,
    allowInsecure,
    codec,
    compression,
    metricsPort,
    logLevel,
    maxForwardSkewMs: int('maxForwardSkewMs', 1000, 7 * 24 * 3_600_000),
    maxInFlightBatches: int('maxInFlightBatches', 1, 64),
    applyMaxRows: int('applyMaxRows', 1, 100_000),
    applyLockTimeoutMs: int('applyLockTimeoutMs', 1, 60_000),
  };
}

function defaultOf(key: Key): string | undefined {
  return SETTINGS.find((s) => s.key === key)?.default;
}

export interface HubEndpoints {
  /** `http(s)://…/auth/token` */
  readonly tokenUrl: URL;
  /** `ws(s)://…/ws` */
  readonly wsUrl: URL;
  readonly secure: boolean;
  readonly loopback: boolean;
}

/** True for `localhost`, 127.0.0.0/8 and ::1: plain text there never leaves the machine. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(h);
  return m !== null && m.slice(1).every((p) => Number(p) <= 255);
}

/**
 * The token and socket URLs for a hub base URL (`http(s)://` or `ws(s)://`, with an optional
 * path prefix). Throws `ConfigError` for other schemes, or for plain text to a host that is
 * not loopback unless `allowInsecure`.
 */
export function hubEndpoints(hubUrl: string, allowInsecure: boolean, name = 'HUB_URL'): HubEndpoints {
  let u: URL;
  try {
    u = new URL(hubUrl);
  } catch {
    throw new ConfigError('hubUrl', `${name}: not a URL`);
  }
  const scheme = u.protocol.replace(/:$/, '');
  if (!['http', 'https', 'ws', 'wss'].includes(scheme)) {
    throw new ConfigError('hubUrl', `${name}: scheme must be https, wss, http or ws (got ${scheme})`);
  }
  if (u.username !== '' || u.password !== '') throw new ConfigError('hubUrl', `${name}: must not carry credentials`);
  const secure = scheme === 'https' || scheme === 'wss';
  const loopback = isLoopbackHost(u.hostname);
  if (!secure && !loopback && !allowInsecure) {
    throw new ConfigError(
      'hubUrl',
      `${name}: plain ${scheme}:// to ${u.hostname} would send the API key unencrypted; use https/wss or set AGENT_ALLOW_INSECURE=true`,
    );
  }
  const base = u.pathname.replace(/\/+$/, '');
  const host = u.host;
  return {
    tokenUrl: new URL(`${secure ? 'https' : 'http'}://${host}${base}/auth/token`),
    wsUrl: new URL(`${secure ? 'wss' : 'ws'}://${host}${base}/ws`),
    secure,
    loopback,
  };
}

/** The configuration as safe to log: the API key replaced. */
export function describeConfig(c: AgentConfig): Record<string, unknown> {
  return { ...c, apiKey: c.apiKey === '' ? '' : '[redacted]', databaseUrl: redactUrl(c.databaseUrl) };
}

/** A URL with any password replaced. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '[unparseable url]';
  }
}

/** The README's reference table of agent settings, generated from `SETTINGS`. */
export function settingsMarkdown(): string {
  const rows = SETTINGS.map((s) => {
    const cell = (v: string | undefined) => (v === undefined ? '' : `\`${v}\``);
    const dflt = s.default !== undefined ? `\`${s.default}\`` : s.required ? 'required' : '';
    return `| ${cell(s.env)} | ${cell(s.flag)} | ${cell(s.file)} | ${dflt} | ${s.description.replace(/\|/g, '\\|')} |`;
  });
  return ['| environment | flag | file key | default | meaning |', '|---|---|---|---|---|', ...rows].join('\n');
}
