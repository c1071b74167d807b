/**
 * `hub-broker demo` from start to exit: embedded databases, hub, branches, the scenario, the
 * result table, optionally staying up (`--keep-running`) until Ctrl-C, and a clean shutdown
 * that removes the data folder unless asked to keep it.
 */
import pino from 'pino';
import { redactUrl } from '../agent/config.js';
import { AGENT_POLL_MS, Cluster, TABLES } from './cluster.js';
import { DataDirError, EmbeddedDatabases } from './databases.js';
import { count, Narrator, seconds } from './narrate.js';
import { BRANCHES, DemoTimeout, resultTable, Scenario, type Outcome } from './scenario.js';

export interface DemoOptions {
  readonly keepRunning: boolean;
  readonly keepData: boolean;
  readonly dataDir: string | undefined;
  readonly verbose: boolean;
  /** The whole run, setup to result, must finish within this. */
  readonly timeoutSeconds: number;
  readonly orders: number;
  /** `DATABASE_URL` and `REDIS_URL` for the hub; unset: embedded database, memory engine. */
  readonly hubDatabaseUrl: string | undefined;
  readonly redisUrl: string | undefined;
}

/** Exit codes. */
export const EXIT = { ok: 0, failed: 1, usage: 2, interrupted: 130 } as const;

/** Longest a shutdown may take before the process gives up on it. */
const SHUTDOWN_LIMIT_MS = 20_000;

function signalled(): { promise: Promise<string>; dispose: () => void } {
  let dispose = (): void => undefined;
  const promise = new Promise<string>((resolve) => {
    const on = (signal: string) => () => resolve(signal);
    const int = on('SIGINT');
    const term = on('SIGTERM');
    process.once('SIGINT', int);
    process.once('SIGTERM', term);
    dispose = () => {
      process.off('SIGINT', int);
      process.off('SIGTERM', term);
    };
  });
  return { promise, dispose };
}

class Interrupted extends Error {
  override readonly name = 'Interrupted';
}

export async function runDemo(options: DemoOptions): Promise<number> {
  const startedAt = Date.now();
  const tty = process.stdout.isTTY === true;
  const say = new Narrator({
    write: (t) => void process.stdout.write(t),
    live: tty,
    color: tty && !('NO_COLOR' in process.env),
  });
  const deadline = startedAt + options.timeoutSeconds * 1000;
  const logDestination = pino.destination({ fd: 2, sync: true });
  const external = options.hubDatabaseUrl !== undefined;

  say.title('Hub-Broker demo: a hub and three branch databases kept in sync, the real hub and agent code in this process.');
  say.section('Setting up');
  let databases: EmbeddedDatabases;
  try {
    databases = await EmbeddedDatabases.create(options.dataDir);
  } catch (err) {
    if (err instanceof DataDirError) {
      say.fail(err.message);
      return EXIT.usage;
    }
    throw err;
  }

  let cluster: Cluster | undefined;
  /** Cluster.start in progress: a timeout may leave it running, and shutdown must still stop what it starts. */
  let starting: Promise<Cluster> | undefined;
  /** Branches being added: a timeout may come meanwhile, and shutdown must stop them too. */
  let adding: Promise<unknown> | undefined;
  let outcome: Outcome | undefined;
  let code: number = EXIT.failed;
  const interrupt = signalled();
  // A wait that never ends (a stuck query, not a slow sync) still ends the run.
  let watchdog: NodeJS.Timeout | undefined;
  const overdue = new Promise<never>((_, reject) => {
    watchdog = setTimeout(
      () => reject(new DemoTimeout(`the demo did not finish within ${options.timeoutSeconds} s (see --timeout)`)),
      options.timeoutSeconds * 1000 + 10_000,
    );
  });
  overdue.catch(() => undefined);
  const stopped = interrupt.promise.then((signal) => {
    throw new Interrupted(signal);
  });
  stopped.catch(() => undefined);

  try {
    await Promise.race([
      (async () => {
        let t = Date.now();
        say.say(`data folder ${databases.root} (${options.keepData ? 'kept at exit' : 'removed at exit; --keep-data keeps it'})`);
        starting = Cluster.start({
          databases,
          hubDatabaseUrl: options.hubDatabaseUrl,
          redisUrl: options.redisUrl,
          logLevel: options.verbose ? 'info' : 'warn',
          logDestination,
        });
        cluster = await starting;
        const engine = options.redisUrl ? `Redis engine at ${redactUrl(options.redisUrl)}` : 'memory engine';
        const hubDb = external ? `PostgreSQL at ${redactUrl(options.hubDatabaseUrl as string)}` : 'embedded PostgreSQL (PGlite)';
        say.ok(`hub listening at ${cluster.hub.url}: ${hubDb}, ${engine}`, Date.now() - t);
        say.say(`tenant ${cluster.tenantId}${external && !options.keepData ? ' (a new one for this run, deleted at exit)' : ''}, conflict strategy last-write-wins`);
        t = Date.now();
        adding = cluster.addBranches(BRANCHES);
        await adding;
        const scenario = new Scenario(cluster, say, { orders: options.orders, deadline });
        const c = cluster;
        await scenario.waitFor('every agent is connected', async () => ({
          done: c.branches.every((b) => b.online),
          status: `connected: ${c.branches.filter((b) => b.online).map((b) => b.id).join(', ') || 'none yet'}`,
        }));
        say.ok(`branches ${BRANCHES.join(', ')}: each an embedded PostgreSQL with tables ${TABLES.map((x) => x.name).join(' and ')}`, Date.now() - t);
        say.detail(`hubsync installed (capture triggers), an API key each, and an agent connected to the hub`);
        say.detail(`(agents poll their outbox every ${AGENT_POLL_MS} ms: NOTIFY does not reach them through the embedded database)`);
        outcome = await scenario.run();
      })(),
      overdue,
      stopped,
    ]);

    say.section('Result');
    const o = outcome as Outcome | undefined;
    if (o) {
      for (const line of resultTable(o)) say.say(line);
      if (o.converged) {
        say.ok(`all ${o.branches.length} branches hold identical data (sha-256 over every synced table in primary-key order)`);
        code = EXIT.ok;
      } else {
        say.fail(`the branches did not converge within ${options.timeoutSeconds} s: their checksums differ`);
      }
    }
    if (code === EXIT.ok && options.keepRunning && cluster) {
      keepRunningBanner(say, cluster, databases, options);
      const signal = await interrupt.promise;
      say.plain('');
      say.plain(`${signal}: stopping`);
    }
  } catch (err) {
    say.end();
    if (err instanceof Interrupted) {
      say.plain('');
      say.plain(`${err.message}: stopping`);
      code = EXIT.interrupted;
    } else if (err instanceof DemoTimeout) {
      say.fail(err.message);
      code = EXIT.failed;
    } else {
      say.fail(`the demo failed: ${(err as Error).message?.split('\n')[0] ?? String(err)}`);
      if (options.verbose) process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
      code = EXIT.failed;
    }
  } finally {
    if (watchdog) clearTimeout(watchdog);
    interrupt.dispose();
  }

  const shutdown = async (): Promise<void> => {
    cluster ??= await starting?.catch(() => undefined);
    await adding?.catch(() => undefined);
    await cluster?.stop(options.keepData);
    await databases.stop();
    if (!options.keepData) await databases.remove();
  };
  let limit: NodeJS.Timeout | undefined;
  const finished = await Promise.race([
    shutdown().then(
      () => true,
      (err: unknown) => {
        say.fail(`shutdown failed: ${(err as Error).message}`);
        return false;
      },
    ),
    new Promise<false>((resolve) => (limit = setTimeout(() => resolve(false), SHUTDOWN_LIMIT_MS))),
  ]);
  if (limit) clearTimeout(limit);
  if (!finished) {
    say.fail(`shutdown did not finish within ${SHUTDOWN_LIMIT_MS / 1000} s`);
    if (code === EXIT.ok) code = EXIT.failed;
    // A loaded machine can stop the databases slower than that, or one is busy with a long
    // statement: end their threads first, so none writes into the folder once it is removed.
    if (!options.keepData) {
      await Promise.race([databases.kill(), new Promise((r) => setTimeout(r, 3000).unref())]);
      await databases.remove().catch(() => undefined);
    }
  }
  const kept = options.keepData ? `; data kept in ${databases.root}` : '; data folder removed';
  say.plain('');
  if (code === EXIT.ok) {
    say.plain(`Done in ${seconds(Date.now() - startedAt)}${kept}.`);
    if (!options.keepRunning) say.plain('Run `npm start -- --keep-running` to keep everything up and write rows yourself.');
  } else {
    say.plain(`Stopped after ${seconds(Date.now() - startedAt)}${kept}.`);
  }
  return code;
}

function keepRunningBanner(say: Narrator, cluster: Cluster, databases: EmbeddedDatabases, options: DemoOptions): void {
  const hub = cluster.hub.url;
  const branches = cluster.branches;
  const first = branches[0];
  const second = branches[1];
  say.section('Still running: write rows at any branch and watch them arrive at the others');
  say.say(`hub           ${hub}`);
  say.say(`metrics       ${hub}/metrics`);
  say.say(`admin API     curl -H 'Authorization: Bearer ${cluster.adminToken}' ${hub}/admin/connections`);
  for (const b of branches) say.say(`${b.id.padEnd(13)} psql ${b.database.url}`);
  if (first && second) {
    say.plain('');
    say.say('for example:');
    say.say(`psql ${first.database.url} -c "INSERT INTO customer (id, name) VALUES (1000, 'Hedy Lamarr')"`);
    say.say(`psql ${second.database.url} -c "SELECT * FROM customer WHERE id = 1000"`);
    say.say(`psql ${first.database.url} -c "SELECT * FROM hubsync.conflicts"`);
  }
  say.plain('');
  say.say(`tables: ${TABLES.map((t) => t.name).join(', ')}; ${count(branches.length)} branches of tenant ${cluster.tenantId}`);
  say.say(`press Ctrl-C to stop${options.keepData ? ` (data stays in ${databases.root})` : ' (the data folder is removed)'}`);
}
