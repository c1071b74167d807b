/**
 * `hub-broker agent [install|uninstall|status|publish-existing|dead-letters|conflicts] [options]`: the branch agent.
 * Without a subcommand it runs until SIGTERM/SIGINT.
 */
import type pg from 'pg';
import { ConfigError, loadConfig, SETTINGS, type AgentConfig, type Need } from '../../agent/config.js';
import { AgentError } from '../../agent/errors.js';
import { triage, triageWords } from './agent-triage.js';

/** Exit code for a bad or missing setting (sysexits EX_CONFIG, as for `hub-broker hub`). */
export const EXIT_CONFIG = 78;
/** Exit code for a refusal with a named culprit (missing table, no primary key, …). */
export const EXIT_REFUSED = 3;

const SUBCOMMANDS: Record<string, { needs: Need[]; summary: string }> = {
  run: { needs: ['database', 'identity', 'tables', 'hub'], summary: 'sync with the hub until stopped (the default)' },
  install: { needs: ['database', 'identity', 'tables'], summary: 'create schema hubsync and the capture triggers (idempotent; also applies a changed table list)' },
  uninstall: { needs: ['database'], summary: 'remove the triggers and schema hubsync (refuses while changes wait unsent; --force drops them)' },
  status: { needs: ['database'], summary: 'show the local sync state: pending changes, last ack, cursor, conflicts, dead letters (--json)' },
  'publish-existing': { needs: ['database'], summary: 'turn rows already in the synced tables into changes, so a first branch publishes its data' },
  'dead-letters': { needs: ['database'], summary: 'list | show <id> | retry <id> | discard <id>: changes the apply could not write (--json)' },
  conflicts: { needs: ['database'], summary: 'list | show <id> | override <id>: concurrent writes one of which lost; override writes the loser (--json)' },
};

export function help(): string {
  const rows = SETTINGS.map((s) => {
    const how = [s.flag ? `${s.flag}${s.key === 'allowInsecure' ? '' : ' <value>'}` : '', s.env ?? ''].filter(Boolean).join(', ');
    const dflt = s.default !== undefined ? `default ${s.default}` : s.required ? 'required' : 'optional';
    return `  ${how}\n      ${s.description} (${dflt})`;
  });
  const width = Math.max(...Object.keys(SUBCOMMANDS).map((k) => k.length));
  return [
    'Usage: hub-broker agent [command] [--config file.yaml] [options]',
    '',
    'The sync agent next to one branch database: captures changes with triggers, sends them to the',
    'hub, applies what other branches wrote, and resolves conflicts the same way everywhere.',
    '',
    'Commands:',
    ...Object.entries(SUBCOMMANDS).map(([k, v]) => `  ${k.padEnd(width)}  ${v.summary}`),
    '',
    'Settings come from the YAML file, then the environment, then options (the last one wins).',
    'The API key is read from API_KEY or API_KEY_FILE only, never from the command line.',
    'Commands other than run need only what they use: install needs DATABASE_URL, TENANT_ID, BRANCH_ID',
    'and the tables; the other commands need only DATABASE_URL.',
    '',
    'Settings:',
    ...rows,
    '',
    `Exit codes: 0 success (run: after a graceful shutdown), ${EXIT_CONFIG} a bad or missing setting (one line on`,
    `stderr names it), ${EXIT_REFUSED} a refusal naming its culprit (missing table, no primary key, unsupported type,`,
    'installation for another branch, outdated installation), 1 anything else (e.g. database unreachable).',
  ].join('\n');
}

function fail(err: unknown): number {
  if (err instanceof ConfigError) {
    console.error(`hub-broker agent: ${err.message}`);
    return EXIT_CONFIG;
  }
  if (err instanceof AgentError) {
    console.error(`hub-broker agent: ${err.message}`);
    return EXIT_REFUSED;
  }
  console.error(`hub-broker agent: ${(err as Error).message?.split('\n')[0] ?? String(err)}`);
  return 1;
}

export async function run(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    console.log(help());
    return 0;
  }
  const first = args[0];
  const sub = first !== undefined && !first.startsWith('-') ? first : 'run';
  const spec = SUBCOMMANDS[sub];
  if (!spec) {
    console.error(`hub-broker agent: unknown command "${sub}" (see hub-broker agent --help)`);
    return 2;
  }
  let rest = sub === first ? args.slice(1) : args;
  let words: { action: string; id: string | undefined } | undefined;
  if (sub === 'dead-letters' || sub === 'conflicts') {
    const w = triageWords(sub, rest);
    if (typeof w === 'string') {
      console.error(w);
      return 2;
    }
    words = w;
    rest = w.flags;
  }
  const force = rest.includes('--force');
  const json = rest.includes('--json');
  // install --schema-version N: this branch's tables are at schema version N already.
  const sv = rest.indexOf('--schema-version');
  const schemaVersion = sv >= 0 ? rest[sv + 1] : undefined;
  if (sv >= 0 && (sub !== 'install' || schemaVersion === undefined || !/^\d{1,9}$/.test(schemaVersion))) {
    console.error(`hub-broker agent: --schema-version ${sub !== 'install' ? 'applies to install only' : 'needs a version number'}`);
    return 2;
  }
  const flags = rest.filter((a, i) => a !== '--force' && a !== '--json' && (sv < 0 || (i !== sv && i !== sv + 1)));
  if ((force && sub !== 'uninstall') || (json && sub !== 'status' && words === undefined)) {
    console.error(`hub-broker agent: ${force ? '--force' : '--json'} does not apply to ${sub}`);
    return 2;
  }
  let config: AgentConfig;
  try {
    config = loadConfig({ argv: flags, env: process.env }, spec.needs);
  } catch (err) {
    return fail(err);
  }
  try {
    switch (sub) {
      case 'install':
        return await install(config, schemaVersion === undefined ? undefined : Number(schemaVersion));
      case 'uninstall':
        return await uninstall(config, force);
      case 'status':
        return await status(config, json);
      case 'publish-existing':
        return await publish(config);
      case 'dead-letters':
      case 'conflicts': {
        const w = words as { action: string; id: string | undefined };
        return await withPool(config, (pool) => triage(pool, sub, w.action, w.id, json, (s) => console.log(s)));
      }
      default:
        return await runAgent(config);
    }
  } catch (err) {
    return fail(err);
  }
}

async function withPool<T>(config: AgentConfig, fn: (pool: pg.Pool) => Promise<T>): Promise<T> {
  const { createPool } = await import('../../agent/db.js');
  const pool = createPool(config.databaseUrl, 2, 'hub-broker-agent-cli');
  try {
    return await fn(pool);
  } finally {
    await pool.end();
  }
}

async function install(config: AgentConfig, schemaVersion: number | undefined): Promise<number> {
  const { install: doInstall } = await import('../../agent/install.js');
  const r = await withPool(config, (pool) =>
    doInstall(pool, { tenantId: config.tenantId, branchId: config.branchId, tables: config.tables, ...(schemaVersion === undefined ? {} : { schemaVersion }) }),
  );
  if (schemaVersion !== undefined) console.log(`schema version ${schemaVersion}: schema changes up to it are taken as applied here`);
  for (const t of r.tables) {
    const verb = r.added.includes(t.name) ? 'added' : 'updated';
    console.log(`${verb}   ${t.name} (key ${t.pk.join(', ')}; ${t.columns.length} columns${t.strategy ? `; ${t.strategy}` : ''})`);
  }
  for (const t of r.removed) console.log(`removed ${t}`);
  console.log(`hubsync installed for ${config.tenantId}/${config.branchId}`);
  return 0;
}

async function uninstall(config: AgentConfig, force: boolean): Promise<number> {
  const { uninstall: doUninstall } = await import('../../agent/install.js');
  const r = await withPool(config, (pool) => doUninstall(pool, { force }));
  if (!r.installed) console.log('hubsync was not installed; nothing to do');
  else console.log(`hubsync removed${r.droppedChanges > 0 ? ` (${r.droppedChanges} unsent changes dropped)` : ''}`);
  return 0;
}

async function status(config: AgentConfig, json: boolean): Promise<number> {
  const { readStatus, formatStatus } = await import('../../agent/status.js');
  const s = await withPool(config, (pool) => readStatus(pool));
  console.log(json ? JSON.stringify(s, null, 2) : formatStatus(s));
  return s.installed ? 0 : 1;
}

async function publish(config: AgentConfig): Promise<number> {
  const { loadInstalledTables } = await import('../../agent/catalog.js');
  const { publishExisting } = await import('../../agent/publish.js');
  const { ProgressLine } = await import('../progress.js');
  const counts = await withPool(config, async (pool) => {
    const tables = await loadInstalledTables(pool).catch(() => {
      throw new AgentError('not_installed', 'hubsync is not installed in this database; run hub-broker agent install');
    });
    const line = new ProgressLine(process.stdout);
    const counts = await publishExisting(pool, tables, (p) => line.update(p.table, p.scanned, p.total, `${p.table}: ${p.published} published, ${p.scanned} of ~${p.total} rows looked at`));
    line.end();
    return counts;
  });
  for (const [t, n] of counts) console.log(`${t}: ${n} rows published`);
  console.log('they go to the hub the next time the agent runs');
  return 0;
}

async function runAgent(config: AgentConfig): Promise<number> {
  const { startAgent } = await import('../../agent/service.js');
  const agent = await startAgent(config);
  return new Promise<number>((resolve) => {
    let signalled = false;
    const shutdown = (): void => {
      // A second signal: stop waiting for the apply in progress.
      if (signalled) process.exit(1);
      signalled = true;
      agent.stop().then(
        () => resolve(0),
        (err: unknown) => {
          console.error(`hub-broker agent: shutdown failed: ${(err as Error).message}`);
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', shutdown);
    process.on('SIGINT', shutdown);
    agent.done.then(
      () => resolve(0),
      (err: unknown) => resolve(fail(err)),
    );
  });
}
