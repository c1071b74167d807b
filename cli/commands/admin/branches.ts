/**
 * `hub-broker admin branches …`: list, show, status, create (printing the API key once), update
 * the routing fields (groups, attributes), rotate the key, suspend, resume, delete.
 */
import { repeatable, SWITCH, UsageError, value, type Flags } from './args.js';
import { arg, branchPath, tenantPath, type Commands, type Invocation } from './command.js';
import { cell, fields, names, pairs, table, time, type Json } from './format.js';

const ROUTING_FLAGS = { group: repeatable('<group>'), attr: repeatable('<key=value>') };

/** What `--group`, `--attr`, `--clear-groups` and `--clear-attrs` ask for. */
export interface RoutingChange {
  readonly groups: readonly string[];
  readonly attributes: Readonly<Record<string, string>>;
  readonly clearGroups: boolean;
  readonly clearAttributes: boolean;
}

export function routingChange(flags: Flags): RoutingChange {
  const attributes: Record<string, string> = {};
  for (const a of flags.values('attr')) {
    const eq = a.indexOf('=');
    if (eq <= 0) throw new UsageError(`--attr must be KEY=VALUE (got "${a.slice(0, 100)}")`);
    const key = a.slice(0, eq);
    if (Object.hasOwn(attributes, key)) throw new UsageError(`--attr ${key} is given more than once`);
    attributes[key] = a.slice(eq + 1);
  }
  return { groups: flags.values('group'), attributes, clearGroups: flags.has('clear-groups'), clearAttributes: flags.has('clear-attrs') };
}

export interface Routing {
  readonly groups: readonly string[];
  readonly attributes: Readonly<Record<string, string>>;
}

/** Whether the change adds to what the branch has, so that its current values must be read first. */
export function needsCurrent(c: RoutingChange): boolean {
  return (c.groups.length > 0 && !c.clearGroups) || (Object.keys(c.attributes).length > 0 && !c.clearAttributes);
}

/**
 * The PATCH body for a change: `--group` adds to the branch's groups and `--attr` sets one
 * attribute, keeping the others; `--clear-…` starts from none. Fields the change does not touch
 * are left out, so the hub keeps them.
 */
export function routingPatch(c: RoutingChange, current: Routing | undefined): Partial<Routing> {
  const body: { groups?: string[]; attributes?: Record<string, string> } = {};
  if (c.clearGroups || c.groups.length > 0) body.groups = [...new Set([...(c.clearGroups ? [] : (current?.groups ?? [])), ...c.groups])];
  if (c.clearAttributes || Object.keys(c.attributes).length > 0) body.attributes = { ...(c.clearAttributes ? {} : current?.attributes), ...c.attributes };
  return body;
}

function branchFieldsText(b: Json): string {
  const out: [string, string][] = [
    ['branch', `${cell(b.tenantId)}/${cell(b.id)}`],
    ['status', cell(b.status)],
    ['groups', names(b.groups)],
    ['attributes', pairs(b.attributes)],
  ];
  if (b.online !== undefined) out.push(['online', b.online ? `yes, on ${cell(b.instance)} since ${time(b.connectedAt)}` : 'no']);
  out.push(
    ['API key', b.hasKey ? `issued ${time(b.keyRotatedAt)}` : 'none'],
    ['previous key valid until', time(b.previousKeyValidUntil)],
    ['last seen', time(b.lastSeenAt)],
    ['created', time(b.createdAt)],
  );
  return fields(out);
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

const statusLine = (b: Json) => `branch ${cell(b.tenantId)}/${cell(b.id)} is ${cell(b.status)}\n`;
const path = (inv: Invocation) => branchPath(arg(inv, 0), arg(inv, 1));

export const branchCommands: Commands = {
  list: {
    args: ['<tenant>'],
    flags: {},
    summary: 'list the branches of a tenant: status, groups, attributes, where online, last seen, cursor, lag',
    run: async (inv) => ({
      body: await inv.client.request('GET', `${tenantPath(arg(inv, 0))}/branches`),
      human: (body: { logHead: number; branches: Json[]; note?: string }) =>
        table(
          ['BRANCH', 'STATUS', 'GROUPS', 'ATTRIBUTES', 'ONLINE', 'INSTANCE', 'LAST SEEN', 'CURSOR', 'LAG'],
          body.branches.map((b) => [cell(b.id), cell(b.status), names(b.groups), pairs(b.attributes), cell(b.online), cell(b.instance), time(b.lastSeenAt), cell(b.cursor), cell(b.lag)]),
        ) + `log head: ${body.logHead}\n${body.note ? `note: ${String(body.note)}\n` : ''}`,
    }),
  },
  show: {
    args: ['<tenant>', '<branch>'],
    flags: {},
    summary: 'show a branch, with its groups and attributes',
    run: async (inv) => ({ body: await inv.client.request('GET', path(inv)), human: branchFieldsText }),
  },
  status: {
    args: ['<tenant>', '<branch>'],
    flags: {},
    summary: "show a branch's sync status: online, instance, last seen, cursor, log head, lag",
    run: async (inv) => ({
      body: await inv.client.request('GET', `${path(inv)}/status`),
      human: (s: Json) => {
        const c = s.connection as Json | null;
        const out: [string, string][] = [
          ['branch', `${cell(s.tenantId)}/${cell(s.branchId)}`],
          ['status', `${cell(s.status)} (tenant ${cell(s.tenantStatus)})`],
          ['online', s.online ? `yes, on ${cell(s.instance)} since ${time(s.connectedAt)}` : 'no'],
          ['last seen', time(s.lastSeenAt)],
          ['cursor', cell(s.cursor)],
          ['log head', cell(s.logHead)],
          ['lag', cell(s.lag)],
          ['needs snapshot', cell(s.needsSnapshot)],
        ];
        if (c) out.push(['connection', `${cell(c.mode)}, ${cell(c.codec)}, from ${cell(c.remoteAddress)}, delivered ${cell(c.delivered)}, buffered ${cell(c.bufferedBytes)} B`]);
        return fields(out);
      },
    }),
  },
  create: {
    args: ['<tenant>', '<branch>'],
    flags: { suspended: SWITCH, ...ROUTING_FLAGS },
    summary: 'create a branch, in the groups and with the attributes given, and print its API key (once)',
    run: async (inv) => {
      const c = routingChange(inv.flags);
      const body = {
        id: arg(inv, 1),
        ...(inv.flags.has('suspended') ? { suspended: true } : {}),
        ...(c.groups.length > 0 ? { groups: c.groups } : {}),
        ...(Object.keys(c.attributes).length > 0 ? { attributes: c.attributes } : {}),
      };
      return {
        body: await inv.client.request('POST', `${tenantPath(arg(inv, 0))}/branches`, body),
        human: (b: Json) => {
          const routed = names(b.groups) !== '-' || pairs(b.attributes) !== '-';
          const routing = routed ? fields([['groups', names(b.groups)], ['attributes', pairs(b.attributes)]]) : '';
          return `created branch ${cell(b.tenantId)}/${cell(b.id)} (${cell(b.status)})\n${routing}${keyNotice(cell(b.apiKey))}`;
        },
        secret: true,
      };
    },
  },
  update: {
    args: ['<tenant>', '<branch>'],
    flags: { ...ROUTING_FLAGS, 'clear-groups': SWITCH, 'clear-attrs': SWITCH },
    summary: 'add groups, set attributes (keeping the others), or clear either first',
    run: async (inv) => {
      const c = routingChange(inv.flags);
      if (c.groups.length === 0 && Object.keys(c.attributes).length === 0 && !c.clearGroups && !c.clearAttributes) {
        throw new UsageError('branches update needs at least one of --group, --attr, --clear-groups, --clear-attrs');
      }
      // Read, then write the whole field: a change made by someone else in between is overwritten.
      const current = needsCurrent(c) ? await inv.client.request<Routing>('GET', path(inv)) : undefined;
      return {
        body: await inv.client.request('PATCH', path(inv), routingPatch(c, current)),
        human: (b: Json) => `updated branch ${cell(b.tenantId)}/${cell(b.id)}\n${branchFieldsText(b)}`,
      };
    },
  },
  'rotate-key': {
    args: ['<tenant>', '<branch>'],
    flags: { 'grace-seconds': value('<seconds>') },
    summary: "issue a new API key and print it (once); the previous key keeps working for --grace-seconds (default: the hub's HUB_KEY_GRACE_SECONDS)",
    run: async (inv) => {
      const grace = inv.flags.int('grace-seconds');
      return {
        body: await inv.client.request('POST', `${path(inv)}/rotate-key`, grace !== undefined ? { graceSeconds: grace } : {}),
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
    run: async (inv) => ({ body: await inv.client.request('POST', `${path(inv)}/suspend`), human: statusLine }),
  },
  resume: {
    args: ['<tenant>', '<branch>'],
    flags: {},
    summary: 'resume a suspended branch',
    run: async (inv) => ({ body: await inv.client.request('POST', `${path(inv)}/resume`), human: statusLine }),
  },
  delete: {
    args: ['<tenant>', '<branch>'],
    flags: {},
    summary: 'delete a branch, its keys and its cursor',
    run: async (inv) => ({ body: await inv.client.request('DELETE', path(inv)), human: (r: Json) => `deleted branch ${cell(r.tenantId)}/${cell(r.id)}\n` }),
  },
};
