/** `hub-broker admin tenants …`: list, show, create, update, suspend, resume, delete. */
import { SWITCH, UsageError, value, type Flags, type FlagSpec } from './args.js';
import { arg, enc, tenantPath, type Commands } from './command.js';
import { cell, fields, table, time, type Json } from './format.js';

/** Options that set a tenant's fields; the help describes them once, under "Tenant options". */
export const TENANT_FLAGS: FlagSpec = {
  'max-branches': value('<n|none>'),
  rate: value('<perSecond:burst|default>'),
  'conflict-strategy': value('<name>'),
  'branch-priority': value('<a,b,...>'),
  'deletion-policy': value('<retain|delete>'),
  'merge-tables': value('<list|none>'),
};

export const TENANT_OPTIONS_HELP = [
  'Tenant options (create, update):',
  '  --max-branches <n|none>           at most n branches (none: no limit; the default)',
  "  --rate <perSecond:burst|default>  the tenant's message rate limit (default: the hub's HUB_TENANT_RATE)",
  '  --conflict-strategy <name>        last-write-wins (the default) or branch-priority',
  '  --branch-priority <a,b,...>       branch ids, highest priority first',
  '  --deletion-policy <retain|delete> whether deleting the tenant keeps or drops its log (default retain)',
  '  --merge-tables <list|none>        tables merged by column, as AGENT_TABLES writes them:',
  '                                    public.customer:column,public.product:additive=stock (none: all by row)',
];

/** The tenant fields given as options, in the API's terms. */
function tenantFields(flags: Flags): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  const max = flags.value('max-branches');
  if (max !== undefined) {
    if (max === 'none') body.maxBranches = null;
    else if (/^\d+$/.test(max)) body.maxBranches = Number(max);
    else throw new UsageError('--max-branches must be a non-negative integer or "none"');
  }
  const rate = flags.value('rate');
  if (rate !== undefined) {
    const m = /^(\d+(?:\.\d+)?):(\d+)$/.exec(rate);
    if (rate === 'default') body.rateLimit = null;
    else if (m) body.rateLimit = { messagesPerSecond: Number(m[1]), burst: Number(m[2]) };
    else throw new UsageError('--rate must be PER_SECOND:BURST (e.g. 100:200) or "default"');
  }
  const strategy = flags.value('conflict-strategy');
  if (strategy !== undefined) body.conflictStrategy = strategy;
  const priority = flags.value('branch-priority');
  if (priority !== undefined) body.branchPriority = priority.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const policy = flags.value('deletion-policy');
  if (policy !== undefined) body.deletionPolicy = policy;
  const merges = flags.value('merge-tables');
  if (merges !== undefined) body.tables = merges === 'none' ? [] : mergeTables(merges);
  return body;
}

/** `public.customer:column,public.product:additive=stock/reserved` as the API's `tables`. */
function mergeTables(list: string): Record<string, unknown>[] {
  return list
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((item) => {
      const [name, ...options] = item.split(':');
      const t: Record<string, unknown> = { name };
      for (const o of options) {
        if (o === 'row' || o === 'column') t.merge = o;
        else if (o.startsWith('additive=')) t.additive = o.slice('additive='.length).split('/').filter((c) => c !== '');
        else throw new UsageError(`--merge-tables: "${item}" is not schema.table[:row|column][:additive=col/col]`);
      }
      return t;
    });
}

function tablesText(r: unknown): string {
  const tables = Array.isArray(r) ? (r as Json[]) : [];
  const one = (t: Json): string => `${cell(t.name)} by ${cell(t.merge)}${(t.additive as string[]).length > 0 ? ` (counters ${(t.additive as string[]).join(', ')})` : ''}`;
  return tables.length === 0 ? 'all by row' : tables.map(one).join('; ');
}

function rateText(r: unknown): string {
  const rate = r as { messagesPerSecond: number; burst: number } | null;
  return rate ? `${rate.messagesPerSecond}/s, burst ${rate.burst}` : 'hub default';
}

function routesText(r: unknown): string {
  const routes = Array.isArray(r) ? (r as Json[]) : [];
  return routes.length === 0 ? 'none (every change goes to every other branch)' : routes.map((x) => cell(x.name)).join(', ');
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
    ['routes', routesText(t.routes)],
    ['merge', tablesText(t.tables)],
    ['schema', cell(t.schemaName)],
  ];
  if (t.branchCount !== undefined) pairs.push(['branches', cell(t.branchCount)]);
  const log = t.log as { head: number; prunedUpto: number; compactedUpto: number } | undefined;
  if (log) pairs.push(['log', `head ${log.head}, pruned up to ${log.prunedUpto}, compacted up to ${log.compactedUpto}`]);
  pairs.push(['created', time(t.createdAt)], ['updated', time(t.updatedAt)]);
  return fields(pairs);
}

const statusLine = (t: Json) => `tenant ${cell(t.id)} is ${cell(t.status)}\n`;

export const tenantCommands: Commands = {
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
    summary: 'show a tenant with its branch count, routes and log offsets',
    run: async (inv) => ({ body: await inv.client.request('GET', tenantPath(arg(inv, 0))), human: tenantFieldsText }),
  },
  create: {
    args: ['<tenant>'],
    flags: { ...TENANT_FLAGS, suspended: SWITCH },
    summary: 'create a tenant (and its schema)',
    run: async (inv) => ({
      body: await inv.client.request('POST', '/admin/tenants', { id: arg(inv, 0), ...tenantFields(inv.flags), ...(inv.flags.has('suspended') ? { suspended: true } : {}) }),
      human: (t: Json) => `created tenant ${cell(t.id)}\n${tenantFieldsText(t)}`,
    }),
  },
  update: {
    args: ['<tenant>'],
    flags: TENANT_FLAGS,
    summary: "change a tenant's settings (only the options given)",
    run: async (inv) => {
      const body = tenantFields(inv.flags);
      if (Object.keys(body).length === 0) throw new UsageError('tenants update needs at least one of --max-branches, --rate, --conflict-strategy, --branch-priority, --deletion-policy');
      return { body: await inv.client.request('PATCH', tenantPath(arg(inv, 0)), body), human: (t: Json) => `updated tenant ${cell(t.id)}\n${tenantFieldsText(t)}` };
    },
  },
  suspend: {
    args: ['<tenant>'],
    flags: {},
    summary: 'suspend a tenant: its branches are disconnected and refused',
    run: async (inv) => ({ body: await inv.client.request('POST', `${tenantPath(arg(inv, 0))}/suspend`), human: statusLine }),
  },
  resume: {
    args: ['<tenant>'],
    flags: {},
    summary: 'resume a suspended tenant',
    run: async (inv) => ({ body: await inv.client.request('POST', `${tenantPath(arg(inv, 0))}/resume`), human: statusLine }),
  },
  delete: {
    args: ['<tenant>'],
    flags: { policy: value('<retain|delete>') },
    summary: 'delete a tenant and its branches; its log is dropped or kept by its deletion policy (or --policy retain|delete)',
    run: async (inv) => {
      const policy = inv.flags.value('policy');
      const q = policy !== undefined ? `?policy=${enc(policy)}` : '';
      return {
        body: await inv.client.request('DELETE', `${tenantPath(arg(inv, 0))}${q}`),
        human: (r: Json) => `deleted tenant ${cell(r.id)}; its schema was ${r.schemaDropped ? 'dropped' : 'kept (policy retain)'}\n`,
      };
    },
  },
};
