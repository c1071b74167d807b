/**
 * `hub-broker admin <resource> <verb> [arguments] [options]`: manage tenants, branches and keys
 * of a running hub through its admin API (docs/api.md). Human tables by default, the API's JSON
 * with `--json`. A new API key is printed once, the only time anyone sees it.
 */
import { readFileSync } from 'node:fs';
import { AdminApiError, AdminClient, AdminClientError, adminBaseUrl, isLoopback } from '../admin-client.js';

/** Exit codes: 0 done, 1 the hub refused or could not be reached, 2 a usage or setting error. */
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

export interface AdminIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
  readonly fetch?: typeof fetch;
}

const processIo: AdminIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  env: process.env,
};

class UsageError extends Error {}

// ------------------------------------------------------------------ arguments

/** An option's value as shown in the help (`<n>`), or `true` for a switch without a value. */
type FlagKind = string | true;

const GLOBAL_FLAGS: Record<string, FlagKind> = {
  'hub-url': '<url>',
  'admin-token': '<token>',
  'admin-token-file': '<file>',
  json: true,
  help: true,
};

const TENANT_FLAGS: Record<string, FlagKind> = {
  'max-branches': '<n|none>',
  rate: '<perSecond:burst|default>',
  'conflict-strategy': '<name>',
  'branch-priority': '<a,b,...>',
  'deletion-policy': '<retain|delete>',
};

interface Parsed {
  readonly positionals: string[];
  readonly flags: Map<string, string | true>;
}

function parseArgs(args: readonly string[], spec: Record<string, FlagKind>): Parsed {
  const positionals: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '--') {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (a === '-h') {
      flags.set('help', true);
      continue;
    }
    if (!a.startsWith('--')) {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = a.slice(2, eq === -1 ? undefined : eq);
    const kind = spec[name];
    if (!kind) throw new UsageError(`unknown option --${name}`);
    if (flags.has(name)) throw new UsageError(`--${name} is given more than once`);
    if (kind === true) {
      if (eq !== -1) throw new UsageError(`--${name} takes no value`);
      flags.set(name, true);
    } else if (eq !== -1) {
      flags.set(name, a.slice(eq + 1));
    } else {
      const v = args[++i];
      if (v === undefined) throw new UsageError(`--${name} needs a value`);
      flags.set(name, v);
    }
  }
  return { positionals, flags };
}

// ------------------------------------------------------------------ commands

interface Invocation {
  readonly args: readonly string[];
  readonly flags: ReadonlyMap<string, string | true>;
  readonly client: AdminClient;
}

interface Command {
  /** Arguments after `<resource> <verb>`, as shown in the help. */
  readonly args: readonly string[];
  /** Options of this command besides the global ones. */
  readonly flags: Record<string, FlagKind>;
  readonly summary: string;
  /** Calls the API; returns the JSON answer and how to show it to a person. */
  readonly run: (inv: Invocation) => Promise<{ body: unknown; human: (body: never) => string; secret?: boolean }>;
}

const enc = encodeURIComponent;
const tenantPath = (t: string) => `/admin/tenants/${enc(t)}`;
const branchPath = (t: string, b: string) => `${tenantPath(t)}/branches/${enc(b)}`;

function str(flags: ReadonlyMap<string, string | true>, name: string): string | undefined {
  const v = flags.get(name);
  return typeof v === 'string' ? v : undefined;
}

function intFlag(flags: ReadonlyMap<string, string | true>, name: string): number | undefined {
  const v = str(flags, name);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`--${name} must be a non-negative integer`);
  return Number(v);
}

/** The tenant fields given as options, in the API's terms. */
function tenantFields(flags: ReadonlyMap<string, string | true>): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  const max = str(flags, 'max-branches');
  if (max !== undefined) {
    if (max === 'none') body.maxBranches = null;
    else if (/^\d+$/.test(max)) body.maxBranches = Number(max);
    else throw new UsageError('--max-branches must be a non-negative integer or "none"');
  }
  const rate = str(flags, 'rate');
  if (rate !== undefined) {
    const m = /^(\d+(?:\.\d+)?):(\d+)$/.exec(rate);
    if (rate === 'default') body.rateLimit = null;
    else if (m) body.rateLimit = { messagesPerSecond: Number(m[1]), burst: Number(m[2]) };
    else throw new UsageError('--rate must be PER_SECOND:BURST (e.g. 100:200) or "default"');
  }
  const strategy = str(flags, 'conflict-strategy');
  if (strategy !== undefined) body.conflictStrategy = strategy;
  const priority = str(flags, 'branch-priority');
  if (priority !== undefined) body.branchPriority = priority.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const policy = str(flags, 'deletion-policy');
  if (policy !== undefined) body.deletionPolicy = policy;
  return body;
}

// ------------------------------------------------------------------ human output

type Json = Record<string, unknown>;

function time(v: unknown): string {
  if (typeof v !== 'string') return '-';
  return v.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function cell(v: unknown): string {
  if (v === null || v === undefined) return '-';
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'number') return String(v);
  return JSON.stringify(v);
}

export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  if (rows.length === 0) return '(none)\n';
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  return `${[line(headers), ...rows.map(line)].join('\n')}\n`;
}

function fields(pairs: readonly (readonly [string, string])[]): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return `${pairs.map(([k, v]) => `${`${k}:`.padEnd(width + 2)}${v}`).join('\n')}\n`;
}

function rateText(r: unknown): string {
  const rate = r as { messagesPerSecond: number; burst: number } | null;
  return rate ? `${rate.messagesPerSecond}/s, burst ${rate.burst}` : 'hub default';
}

function tenantFieldsText(t: Json): string {
  const pairs: [string, string][] = [
    ['tenant', cell(t.id)],
    ['status', cell(t.status)],
    ['max branches', t.maxBranches === null ? 'no limit' : cell(t.maxBranches)],
    ['rate limit', rateText(t.rateLimit)],
    ['conflict strategy', cell(t.conflictStrategy)],
    ['branch priority', (t.branchPriority as string[]).join(', ') || '-'],
    ['deletion policy', cell(t.deletionPolicy)],
    ['schema', cell(t.schemaName)],
  ];
  if (t.branchCount !== undefined) pairs.push(['branches', cell(t.branchCount)]);
  const log = t.log as { head: number; prunedUpto: number; compactedUpto: number } | undefined;
  if (log) pairs.push(['log', `head ${log.head}, pruned up to ${log.prunedUpto}, compacted up to ${log.compactedUpto}`]);
  pairs.push(['created', time(t.createdAt)], ['updated', time(t.updatedAt)]);
  return fields(pairs);
}

function branchFieldsText(b: Json): string {
  const pairs: [string, string][] = [
    ['branch', `${cell(b.tenantId)}/${cell(b.id)}`],
    ['status', cell(b.status)],
  ];
  if (b.online !== undefined) pairs.push(['online', b.online ? `yes, on ${cell(b.instance)} since ${time(b.connectedAt)}` : 'no']);
  pairs.push(
    ['API key', b.hasKey ? `issued ${time(b.keyRotatedAt)}` : 'none'],
    ['previous key valid until', time(b.previousKeyValidUntil)],
    ['last seen', time(b.lastSeenAt)],
    ['created', time(b.createdAt)],
  );
  return fields(pairs);
}

function keyNotice(key: string): string {
  return [
    '',
    'API key (shown only this once: the hub keeps only a hash of it). Store it now, e.g. as the',
    "agent's API_KEY or in the file named by API_KEY_FILE:",
    '',
    `  ${key}`,
    '',
  ].join('\n');
}

// ------------------------------------------------------------------ the command table

const COMMANDS: Record<string, Record<string, Command>> = {
  tenants: {
    list: {
      args: [],
      flags: {},
      summary: 'list tenants',
      run: async ({ client }) => ({
        body: await client.request('GET', '/admin/tenants'),
        human: (body: { tenants: Json[] }) =>
          table(
            ['TENANT', 'STATUS', 'MAX BRANCHES', 'RATE LIMIT', 'STRATEGY', 'DELETION'],
            body.tenants.map((t) => [cell(t.id), cell(t.status), t.maxBranches === null ? '-' : cell(t.maxBranches), rateText(t.rateLimit), cell(t.conflictStrategy), cell(t.deletionPolicy)]),
          ),
      }),
    },
    show: {
      args: ['<tenant>'],
      flags: {},
      summary: "show a tenant with its branch count and log offsets",
      run: async ({ client, args }) => ({ body: await client.request('GET', tenantPath(args[0] as string)), human: tenantFieldsText }),
    },
    create: {
      args: ['<tenant>'],
      flags: { ...TENANT_FLAGS, suspended: true },
      summary: 'create a tenant (and its schema)',
      run: async ({ client, args, flags }) => ({
        body: await client.request('POST', '/admin/tenants', { id: args[0], ...tenantFields(flags), ...(flags.has('suspended') ? { suspended: true } : {}) }),
        human: (t: Json) => `created tenant ${cell(t.id)}\n${tenantFieldsText(t)}`,
      }),
    },
    update: {
      args: ['<tenant>'],
      flags: TENANT_FLAGS,
      summary: 'change a tenant\'s settings (only the options given)',
      run: async ({ client, args, flags }) => {
        const body = tenantFields(flags);
        if (Object.keys(body).length === 0) throw new UsageError('tenants update needs at least one of --max-branches, --rate, --conflict-strategy, --branch-priority, --deletion-policy');
        return { body: await client.request('PATCH', tenantPath(args[0] as string), body), human: (t: Json) => `updated tenant ${cell(t.id)}\n${tenantFieldsText(t)}` };
      },
    },
    suspend: {
      args: ['<tenant>'],
      flags: {},
      summary: 'suspend a tenant: its branches are disconnected and refused',
      run: async ({ client, args }) => ({ body: await client.request('POST', `${tenantPath(args[0] as string)}/suspend`), human: (t: Json) => `tenant ${cell(t.id)} is ${cell(t.status)}\n` }),
    },
    resume: {
      args: ['<tenant>'],
      flags: {},
      summary: 'resume a suspended tenant',
      run: async ({ client, args }) => ({ body: await client.request('POST', `${tenantPath(args[0] as string)}/resume`), human: (t: Json) => `tenant ${cell(t.id)} is ${cell(t.status)}\n` }),
    },
    delete: {
      args: ['<tenant>'],
      flags: { policy: '<retain|delete>' },
      summary: "delete a tenant and its branches; its log is dropped or kept by its deletion policy (or --policy retain|delete)",
      run: async ({ client, args, flags }) => {
        const policy = str(flags, 'policy');
        const q = policy !== undefined ? `?policy=${enc(policy)}` : '';
        return {
          body: await client.request('DELETE', `${tenantPath(args[0] as string)}${q}`),
          human: (r: Json) => `deleted tenant ${cell(r.id)}; its schema was ${r.schemaDropped ? 'dropped' : 'kept (policy retain)'}\n`,
        };
      },
    },
  },
  branches: {
    list: {
      args: ['<tenant>'],
      flags: {},
      summary: 'list the branches of a tenant: status, where online, last seen, cursor, lag',
      run: async ({ client, args }) => ({
        body: await client.request('GET', `${tenantPath(args[0] as string)}/branches`),
        human: (body: { logHead: number; branches: Json[]; note?: string }) =>
          table(
            ['BRANCH', 'STATUS', 'ONLINE', 'INSTANCE', 'LAST SEEN', 'CURSOR', 'LAG'],
            body.branches.map((b) => [cell(b.id), cell(b.status), cell(b.online), cell(b.instance), time(b.lastSeenAt), cell(b.cursor), cell(b.lag)]),
          ) + `log head: ${body.logHead}\n${body.note ? `note: ${String(body.note)}\n` : ''}`,
      }),
    },
    show: {
      args: ['<tenant>', '<branch>'],
      flags: {},
      summary: 'show a branch',
      run: async ({ client, args }) => ({ body: await client.request('GET', branchPath(args[0] as string, args[1] as string)), human: branchFieldsText }),
    },
    status: {
      args: ['<tenant>', '<branch>'],
      flags: {},
      summary: 'show a branch\'s sync status: online, instance, last seen, cursor, log head, lag',
      run: async ({ client, args }) => ({
        body: await client.request('GET', `${branchPath(args[0] as string, args[1] as string)}/status`),
        human: (s: Json) => {
          const c = s.connection as Json | null;
          const pairs: [string, string][] = [
            ['branch', `${cell(s.tenantId)}/${cell(s.branchId)}`],
            ['status', `${cell(s.status)} (tenant ${cell(s.tenantStatus)})`],
            ['online', s.online ? `yes, on ${cell(s.instance)} since ${time(s.connectedAt)}` : 'no'],
            ['last seen', time(s.lastSeenAt)],
            ['cursor', cell(s.cursor)],
            ['log head', cell(s.logHead)],
            ['lag', cell(s.lag)],
            ['needs snapshot', cell(s.needsSnapshot)],
          ];
          if (c) pairs.push(['connection', `${cell(c.mode)}, ${cell(c.codec)}, from ${cell(c.remoteAddress)}, delivered ${cell(c.delivered)}, buffered ${cell(c.bufferedBytes)} B`]);
          return fields(pairs);
        },
      }),
    },
    create: {
      args: ['<tenant>', '<branch>'],
      flags: { suspended: true },
      summary: 'create a branch and print its API key (once)',
      run: async ({ client, args, flags }) => ({
        body: await client.request('POST', `${tenantPath(args[0] as string)}/branches`, { id: args[1], ...(flags.has('suspended') ? { suspended: true } : {}) }),
        human: (b: Json) => `created branch ${cell(b.tenantId)}/${cell(b.id)} (${cell(b.status)})\n${keyNotice(cell(b.apiKey))}`,
        secret: true,
      }),
    },
    'rotate-key': {
      args: ['<tenant>', '<branch>'],
      flags: { 'grace-seconds': '<seconds>' },
      summary: "issue a new API key and print it (once); the previous key keeps working for --grace-seconds (default: the hub's HUB_KEY_GRACE_SECONDS)",
      run: async ({ client, args, flags }) => {
        const grace = intFlag(flags, 'grace-seconds');
        return {
          body: await client.request('POST', `${branchPath(args[0] as string, args[1] as string)}/rotate-key`, grace !== undefined ? { graceSeconds: grace } : {}),
          human: (b: Json) =>
            `rotated the API key of branch ${cell(b.tenantId)}/${cell(b.id)}; ` +
            (b.previousKeyValidUntil ? `the previous key works until ${time(b.previousKeyValidUntil)}\n` : 'the previous key no longer works\n') +
            keyNotice(cell(b.apiKey)),
          secret: true,
        };
      },
    },
    suspend: {
      args: ['<tenant>', '<branch>'],
      flags: {},
      summary: 'suspend a branch: its connection is closed and refused',
      run: async ({ client, args }) => ({
        body: await client.request('POST', `${branchPath(args[0] as string, args[1] as string)}/suspend`),
        human: (b: Json) => `branch ${cell(b.tenantId)}/${cell(b.id)} is ${cell(b.status)}\n`,
      }),
    },
    resume: {
      args: ['<tenant>', '<branch>'],
      flags: {},
      summary: 'resume a suspended branch',
      run: async ({ client, args }) => ({
        body: await client.request('POST', `${branchPath(args[0] as string, args[1] as string)}/resume`),
        human: (b: Json) => `branch ${cell(b.tenantId)}/${cell(b.id)} is ${cell(b.status)}\n`,
      }),
    },
    delete: {
      args: ['<tenant>', '<branch>'],
      flags: {},
      summary: 'delete a branch, its keys and its cursor',
      run: async ({ client, args }) => ({
        body: await client.request('DELETE', branchPath(args[0] as string, args[1] as string)),
        human: (r: Json) => `deleted branch ${cell(r.tenantId)}/${cell(r.id)}\n`,
      }),
    },
  },
  connections: {
    list: {
      args: [],
      flags: { tenant: '<tenant>' },
      summary: 'list online branches on every hub instance (details only for the instance that answers)',
      run: async ({ client, flags }) => {
        const tenant = str(flags, 'tenant');
        return {
          body: await client.request('GET', `/admin/connections${tenant !== undefined ? `?tenant=${enc(tenant)}` : ''}`),
          human: (body: { answeredBy: string; connections: Json[] }) =>
            table(
              ['TENANT', 'BRANCH', 'INSTANCE', 'CONNECTED', 'MODE', 'APPLIED', 'BUFFERED'],
              body.connections.map((c) => {
                const d = c.details as Json | null;
                return [cell(c.tenantId), cell(c.branchId), cell(c.instance), time(c.connectedAt), cell(d?.mode), cell(d?.applied), cell(d?.bufferedBytes)];
              }),
            ) + `answered by ${body.answeredBy}; MODE, APPLIED and BUFFERED are known for its own connections only\n`,
        };
      },
    },
  },
  audit: {
    list: {
      args: [],
      flags: { tenant: '<tenant>', event: '<event>', limit: '<n>' },
      summary: 'show the audit log, newest first (--tenant, --event, --limit 1-1000, default 100)',
      run: async ({ client, flags }) => {
        const q = new URLSearchParams();
        for (const name of ['tenant', 'event', 'limit']) {
          const v = str(flags, name);
          if (v !== undefined) q.set(name, v);
        }
        const qs = q.toString();
        return {
          body: await client.request('GET', `/admin/audit${qs ? `?${qs}` : ''}`),
          human: (body: { entries: Json[] }) =>
            table(
              ['AT', 'TENANT', 'BRANCH', 'EVENT', 'SOURCE', 'DETAIL'],
              body.entries.map((e) => {
                const detail = JSON.stringify(e.detail ?? {});
                return [time(e.at), cell(e.tenantId), cell(e.branchId), cell(e.event), cell(e.source), detail === '{}' ? '' : detail.length > 80 ? `${detail.slice(0, 77)}...` : detail];
              }),
            ),
        };
      },
    },
  },
};

const ALIASES: Record<string, string> = { tenant: 'tenants', branch: 'branches', connection: 'connections' };
/** Resources whose only verb is `list` may omit it. */
const DEFAULT_VERB: Record<string, string> = { connections: 'list', audit: 'list' };

const ALL_FLAGS: Record<string, FlagKind> = Object.assign(
  {},
  GLOBAL_FLAGS,
  ...Object.values(COMMANDS).flatMap((verbs) => Object.values(verbs).map((c) => c.flags)),
);

export function help(): string {
  const lines: string[] = [];
  for (const [resource, verbs] of Object.entries(COMMANDS)) {
    for (const [verb, c] of Object.entries(verbs)) {
      const tenantOpts = Object.keys(TENANT_FLAGS).every((n) => n in c.flags);
      const opts = Object.entries(c.flags)
        .filter(([n]) => !(tenantOpts && n in TENANT_FLAGS))
        .map(([n, k]) => (k === true ? `[--${n}]` : `[--${n} ${k}]`));
      if (tenantOpts) opts.unshift('[tenant options]');
      const name = DEFAULT_VERB[resource] === verb ? `${resource} [${verb}]` : `${resource} ${verb}`;
      lines.push(`  ${[name, ...c.args, ...opts].join(' ')}`, `      ${c.summary}`);
    }
  }
  return [
    'Usage: hub-broker admin <resource> <verb> [arguments] [options]',
    '',
    "Manages tenants, branches and API keys of a running hub through its admin API (/admin/, see",
    'docs/api.md). The hub must run with HUB_ADMIN_TOKEN set; give the same token here.',
    '',
    'Commands:',
    ...lines,
    '',
    'Tenant options (create, update):',
    '  --max-branches <n|none>           at most n branches (none: no limit; the default)',
    '  --rate <perSecond:burst|default>  the tenant\'s message rate limit (default: the hub\'s HUB_TENANT_RATE)',
    '  --conflict-strategy <name>        last-write-wins (the default) or branch-priority',
    '  --branch-priority <a,b,...>       branch ids, highest priority first',
    '  --deletion-policy <retain|delete> whether deleting the tenant keeps or drops its log (default retain)',
    '',
    'Options:',
    '  --hub-url <url>            the hub, e.g. https://hub.example.com (env HUB_URL; wss:// works too)',
    '  --admin-token-file <file>  read the admin token from a file',
    '  --admin-token <token>      the admin token (env HUB_ADMIN_TOKEN). Other users can read a command line',
    '                             in the process list: prefer HUB_ADMIN_TOKEN or --admin-token-file',
    '  --json                     print the API\'s JSON answer unchanged (for scripts)',
    '  --help                     show this help',
    '',
    'A new API key (branches create, branches rotate-key) is printed once; the hub stores only a hash.',
    '',
    `Exit codes: 0 success, ${EXIT_FAILED} the hub refused the request or could not be reached (one line on stderr),`,
    `${EXIT_USAGE} a usage error or a missing hub URL or admin token.`,
  ].join('\n');
}

function resolveCommand(positionals: readonly string[]): { name: string; command: Command; args: string[] } {
  const [first, second, ...rest] = positionals;
  if (first === undefined) throw new UsageError('which resource? tenants, branches, connections or audit');
  const resource = ALIASES[first] ?? first;
  const verbs = COMMANDS[resource];
  if (!verbs) throw new UsageError(`unknown resource "${first}" (tenants, branches, connections, audit)`);
  let verb = second;
  let args = rest;
  if (verb === undefined || !(verb in verbs)) {
    const dflt = DEFAULT_VERB[resource];
    if (dflt === undefined) {
      throw new UsageError(verb === undefined ? `${resource} needs a verb: ${Object.keys(verbs).join(', ')}` : `unknown verb "${verb}" for ${resource} (${Object.keys(verbs).join(', ')})`);
    }
    args = second === undefined ? [] : [second, ...rest];
    verb = dflt;
  }
  const command = verbs[verb] as Command;
  const name = `${resource} ${verb}`;
  if (args.length < command.args.length) throw new UsageError(`${name} needs ${command.args.slice(args.length).join(' ')}`);
  if (args.length > command.args.length) throw new UsageError(`${name}: unexpected argument "${args[command.args.length]}"`);
  return { name, command, args };
}

function adminToken(flags: ReadonlyMap<string, string | true>, io: AdminIo): string {
  const flag = str(flags, 'admin-token');
  const file = str(flags, 'admin-token-file');
  if (flag !== undefined && file !== undefined) throw new UsageError('give --admin-token or --admin-token-file, not both');
  let token: string | undefined;
  if (flag !== undefined) {
    io.err('hub-broker admin: warning: --admin-token is visible to other users in the process list; prefer HUB_ADMIN_TOKEN or --admin-token-file\n');
    token = flag;
  } else if (file !== undefined) {
    try {
      token = readFileSync(file, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read --admin-token-file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  } else {
    token = io.env.HUB_ADMIN_TOKEN;
  }
  token = token?.trim();
  if (!token) throw new UsageError('no admin token: set HUB_ADMIN_TOKEN or use --admin-token-file');
  return token;
}

export async function run(argv: string[], io: AdminIo = processIo): Promise<number> {
  const fail = (code: number, message: string) => {
    io.err(`hub-broker admin: ${message.split('\n')[0]}\n`);
    return code;
  };
  try {
    const parsed = parseArgs(argv, ALL_FLAGS);
    if (parsed.flags.has('help') || argv.length === 0) {
      if (argv.length === 0) {
        io.err(`${help()}\n`);
        return EXIT_USAGE;
      }
      io.out(`${help()}\n`);
      return 0;
    }
    const { name, command, args } = resolveCommand(parsed.positionals);
    for (const flag of parsed.flags.keys()) {
      if (!(flag in GLOBAL_FLAGS) && !(flag in command.flags)) throw new UsageError(`${name} does not take --${flag}`);
    }
    const rawUrl = str(parsed.flags, 'hub-url') ?? io.env.HUB_URL;
    if (!rawUrl) throw new UsageError('no hub URL: set HUB_URL or use --hub-url');
    let baseUrl;
    try {
      baseUrl = adminBaseUrl(rawUrl);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const token = adminToken(parsed.flags, io);
    if (baseUrl.protocol === 'http:' && !isLoopback(baseUrl)) {
      io.err(`hub-broker admin: warning: sending the admin token unencrypted to ${baseUrl.host}; use https outside a trusted network\n`);
    }
    const client = new AdminClient({ baseUrl, token, ...(io.fetch ? { fetch: io.fetch } : {}) });
    const result = await command.run({ args, flags: parsed.flags, client });
    if (parsed.flags.has('json')) {
      io.out(`${JSON.stringify(result.body, null, 2)}\n`);
      if (result.secret) io.err('hub-broker admin: note: the apiKey above is shown only this once; store it now\n');
    } else {
      io.out(result.human(result.body as never));
    }
    return 0;
  } catch (err) {
    if (err instanceof UsageError) return fail(EXIT_USAGE, `${err.message} (see hub-broker admin --help)`);
    if (err instanceof AdminApiError) return fail(EXIT_FAILED, `${err.message} (HTTP ${err.status} ${err.code})`);
    if (err instanceof AdminClientError) return fail(EXIT_FAILED, err.message);
    throw err;
  }
}
