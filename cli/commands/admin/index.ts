/**
 * `hub-broker admin <resource> <verb> [arguments] [options]`: manage tenants, branches, keys and
 * routes of a running hub through its admin API (docs/api.md). Human tables by default, the API's
 * JSON with `--json`. A new API key is printed once, the only time anyone sees it.
 */
import { AdminApiError, AdminClientError } from '../../admin-client.js';
import { flagUsage, parseArgs, SWITCH, UsageError, value, type FlagSpec } from './args.js';
import { auditCommands } from './audit.js';
import { branchCommands } from './branches.js';
import type { Command, Commands } from './command.js';
import { connect } from './connect.js';
import { connectionCommands } from './connections.js';
import { routeCommands } from './routes.js';
import { schemaCommands } from './schema.js';
import { TENANT_FLAGS, TENANT_OPTIONS_HELP, tenantCommands } from './tenants.js';
import { conflictCommands, deadLetterCommands } from './triage.js';

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

const GLOBAL_FLAGS: FlagSpec = {
  'hub-url': value('<url>'),
  'admin-token': value('<token>'),
  'admin-token-file': value('<file>'),
  json: SWITCH,
  help: SWITCH,
};

const COMMANDS: Readonly<Record<string, Commands>> = {
  tenants: tenantCommands,
  branches: branchCommands,
  routes: routeCommands,
  schema: schemaCommands,
  connections: connectionCommands,
  audit: auditCommands,
  'dead-letters': deadLetterCommands,
  conflicts: conflictCommands,
};

const ALIASES: Record<string, string> = { tenant: 'tenants', branch: 'branches', route: 'routes', connection: 'connections', 'dead-letter': 'dead-letters', conflict: 'conflicts' };
/** Resources whose only verb is `list` may omit it. */
const DEFAULT_VERB: Record<string, string> = { connections: 'list', audit: 'list' };

const ALL_FLAGS: FlagSpec = Object.assign({}, GLOBAL_FLAGS, ...Object.values(COMMANDS).flatMap((verbs) => Object.values(verbs).map((c) => c.flags)));

export function help(): string {
  const lines: string[] = [];
  for (const [resource, verbs] of Object.entries(COMMANDS)) {
    for (const [verb, c] of Object.entries(verbs)) {
      const tenantOpts = Object.keys(TENANT_FLAGS).every((n) => n in c.flags);
      const opts = Object.entries(c.flags)
        .filter(([n]) => !(tenantOpts && n in TENANT_FLAGS))
        .map(([n, k]) => flagUsage(n, k));
      if (tenantOpts) opts.unshift('[tenant options]');
      const name = DEFAULT_VERB[resource] === verb ? `${resource} [${verb}]` : `${resource} ${verb}`;
      lines.push(`  ${[name, ...c.args, ...opts].join(' ')}`, `      ${c.summary}`);
    }
  }
  return [
    'Usage: hub-broker admin <resource> <verb> [arguments] [options]',
    '',
    'Manages tenants, branches, API keys and routes of a running hub through its admin API (/admin/,',
    'see docs/api.md). The hub must run with HUB_ADMIN_TOKEN set; give the same token here.',
    '',
    'Commands:',
    ...lines,
    '',
    ...TENANT_OPTIONS_HELP,
    '',
    'Branch routing options (branches create, update):',
    '  --group <group>      a group the branch belongs to, which routes name in from and to (repeatable)',
    '  --attr <key=value>   an attribute that route filters compare rows with as branch.<key> (repeatable)',
    '  --clear-groups       (update) remove every group first; --group then gives the new ones',
    '  --clear-attrs        (update) remove every attribute first; --attr then gives the new ones',
    '',
    'Options:',
    '  --hub-url <url>            the hub, e.g. https://hub.example.com (env HUB_URL; wss:// works too)',
    '  --admin-token-file <file>  read the admin token from a file',
    '  --admin-token <token>      the admin token (env HUB_ADMIN_TOKEN). Other users can read a command line',
    '                             in the process list: prefer HUB_ADMIN_TOKEN or --admin-token-file',
    "  --json                     print the API's JSON answer unchanged (for scripts)",
    '  --help                     show this help',
    '',
    'A new API key (branches create, branches rotate-key) is printed once; the hub stores only a hash.',
    '',
    `Exit codes: 0 success, ${EXIT_FAILED} the hub refused the request or could not be reached (one line on stderr),`,
    `${EXIT_USAGE} a usage error, an unreadable file, or a missing hub URL or admin token.`,
  ].join('\n');
}

function resolveCommand(positionals: readonly string[]): { name: string; command: Command; args: string[] } {
  const [first, second, ...rest] = positionals;
  const resources = Object.keys(COMMANDS).join(', ');
  if (first === undefined) throw new UsageError(`which resource? ${resources}`);
  const resource = ALIASES[first] ?? first;
  const verbs = COMMANDS[resource];
  if (!verbs) throw new UsageError(`unknown resource "${first}" (${resources})`);
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
    for (const flag of parsed.flags.names()) {
      if (!(flag in GLOBAL_FLAGS) && !(flag in command.flags)) throw new UsageError(`${name} does not take --${flag}`);
    }
    for (const [flag, kind] of Object.entries(command.flags)) {
      if (kind.kind === 'value' && kind.required && !parsed.flags.has(flag)) throw new UsageError(`${name} needs --${flag} ${kind.value}`);
    }
    const client = connect(parsed.flags, io);
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
