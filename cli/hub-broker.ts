#!/usr/bin/env node
/** The one CLI: `hub-broker <command>`. Each command lives in its own module, loaded on demand. */

interface Command {
  readonly summary: string;
  readonly run: (args: string[]) => Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  hub: { summary: 'run the relay (HTTP + WebSocket server)', run: (args) => import('./commands/hub.js').then((m) => m.run(args)) },
  agent: { summary: 'run the sync agent next to a branch database', run: (args) => import('./commands/agent.js').then((m) => m.run(args)) },
  operator: { summary: 'run the Kubernetes operator', run: (args) => import('./commands/operator.js').then((m) => m.run(args)) },
  admin: { summary: 'manage tenants, branches and keys of a running hub', run: (args) => import('./commands/admin.js').then((m) => m.run(args)) },
  schema: {
    summary: 'publish schema changes to every branch of a tenant (hub-broker schema apply --tenant <t> <file.sql>)',
    run: (args) => import('./commands/admin.js').then((m) => m.run(['schema', ...tenantFirst(args)])),
  },
  demo: { summary: 'run a self-contained demo: a hub and three branches syncing', run: (args) => import('./commands/demo.js').then((m) => m.run(args)) },
};

/** `schema <verb> --tenant t …` as `admin schema <verb> t …`. */
function tenantFirst(args: readonly string[]): string[] {
  const [verb, ...rest] = args;
  const i = rest.findIndex((a) => a === '--tenant' || a.startsWith('--tenant='));
  if (verb === undefined || i < 0) return [...args];
  const given = rest[i] as string;
  const tenant = given.includes('=') ? given.slice('--tenant='.length) : rest[i + 1];
  const others = rest.filter((_, j) => j !== i && !(j === i + 1 && !given.includes('=')));
  return tenant === undefined ? [...args] : [verb, tenant, ...others];
}

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return ['Usage: hub-broker <command> [options]', '', 'Commands:', ...lines, '', 'Run `hub-broker <command> --help` for a command\'s options.'].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`hub-broker: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exitCode = 1;
  },
);
