/** `hub-broker demo [options]`: the self-contained demo (`npm start`). */
import type { DemoOptions } from '../../demo/run.js';

const DEFAULT_TIMEOUT_SECONDS = 300;
const DEFAULT_ORDERS = 3000;

export function help(): string {
  return [
    'Usage: hub-broker demo [options]',
    '',
    'Runs a hub and three branch databases in this process and tells, step by step, what happens:',
    'inserts at each branch, one row changed at two branches at once (last-write-wins by HLC), a stock',
    'level sold at two branches at once (a counter: both sales count), a delete, a branch offline',
    'and caught up, a busy hour of orders, and a new branch bootstrapped',
    'from a snapshot. It ends with row counts and a checksum per branch, and exits 0 when every',
    'branch holds the same data. The databases are embedded PostgreSQL (PGlite): nothing to install.',
    'The hub and the agents are the real `hub-broker hub` and `hub-broker agent` code.',
    '',
    'Options:',
    '  --keep-running      after the scenario, keep everything up and print the hub URL, its /metrics,',
    '                      an admin API example and a psql connection string per branch; Ctrl-C stops',
    '  --data-dir <dir>    put the databases in <dir> (empty or new) instead of a temp folder',
    '  --keep-data         keep the data folder at exit (by default it is removed)',
    `  --orders <n>        orders written during the busy hour, over all branches (default ${DEFAULT_ORDERS})`,
    `  --timeout <s>       give up when the run takes longer than this many seconds (default ${DEFAULT_TIMEOUT_SECONDS})`,
    '  --verbose           hub and agent logs at info level on stderr (default: warnings only)',
    '  --help              show this help',
    '',
    'Environment:',
    '  DATABASE_URL        the hub uses this PostgreSQL server instead of an embedded database,',
    '                      with a new tenant for each run (deleted at exit unless --keep-data)',
    '  REDIS_URL           the hub uses this Redis (the engine for several hub instances)',
    '                      instead of its in-memory engine',
    '  NO_COLOR            no colours in the output',
    '',
    'Exit codes: 0 every branch converged (with --keep-running: stopped by Ctrl-C or SIGTERM),',
    '1 they did not converge or a step failed or timed out (one line says which), 2 a bad option,',
    '130 interrupted before the scenario finished.',
  ].join('\n');
}

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Options from the command line and the environment; throws `UsageError` for bad ones. Pure. */
export function parseOptions(args: readonly string[], env: Readonly<Record<string, string | undefined>>): DemoOptions {
  let keepRunning = false;
  let keepData = false;
  let verbose = false;
  let dataDir: string | undefined;
  let timeoutSeconds = DEFAULT_TIMEOUT_SECONDS;
  let orders = DEFAULT_ORDERS;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const eq = arg.indexOf('=');
    const name = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    const value = (): string => {
      if (eq > 0 && arg.startsWith('--')) return arg.slice(eq + 1);
      const next = args[i + 1];
      if (next === undefined) throw new UsageError(`${name} needs a value`);
      i++;
      return next;
    };
    const int = (min: number, max: number): number => {
      const v = value();
      const n = /^\d+$/.test(v) ? Number(v) : NaN;
      if (!(n >= min && n <= max)) throw new UsageError(`${name} must be a whole number from ${min} to ${max} (got "${v.slice(0, 40)}")`);
      return n;
    };
    switch (name) {
      case '--keep-running':
        keepRunning = true;
        break;
      case '--keep-data':
        keepData = true;
        break;
      case '--verbose':
        verbose = true;
        break;
      case '--data-dir':
        dataDir = value();
        if (dataDir === '') throw new UsageError('--data-dir must not be empty');
        break;
      case '--timeout':
        timeoutSeconds = int(10, 86_400);
        break;
      case '--orders':
        orders = int(0, 1_000_000);
        break;
      default:
        throw new UsageError(`unknown option "${arg.slice(0, 60)}" (see hub-broker demo --help)`);
    }
  }
  const nonEmpty = (v: string | undefined) => (v === undefined || v.trim() === '' ? undefined : v.trim());
  return {
    keepRunning,
    keepData,
    verbose,
    dataDir,
    timeoutSeconds,
    orders,
    hubDatabaseUrl: nonEmpty(env.DATABASE_URL),
    redisUrl: nonEmpty(env.REDIS_URL),
  };
}

export async function run(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    console.log(help());
    return 0;
  }
  let options: DemoOptions;
  try {
    options = parseOptions(args, process.env);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`hub-broker demo: ${err.message}`);
      return 2;
    }
    throw err;
  }
  const { runDemo } = await import('../../demo/run.js');
  const code = await runDemo(options);
  // Everything was stopped; should a handle still hold the event loop (a step abandoned at a
  // timeout), the demo still ends instead of hanging the terminal.
  setTimeout(() => process.exit(code), 5000).unref();
  return code;
}
