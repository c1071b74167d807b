/** pgbench as a child process, for tests and benchmarks: one copy of the arguments and of reading its report. */
import { spawn, type ChildProcess } from 'node:child_process';

export interface PgbenchOptions {
  readonly clients?: number;
  /** `-T`: run for this long… */
  readonly seconds?: number;
  /** …or `-t`: this many transactions per client. */
  readonly transactionsPerClient?: number;
  /** `-R`: transactions per second, all clients together. */
  readonly rate?: number;
  /** A script file (`-f`), or a built-in (`-b`). */
  readonly script: { readonly file: string } | { readonly builtin: string };
  /** Each child goes through here (benchmarks kill them at exit). */
  readonly track?: (child: ChildProcess) => ChildProcess;
}

export interface PgbenchRun {
  readonly transactions: number;
  readonly tps: number;
  readonly output: string;
}

export function pgbench(url: string, o: PgbenchOptions): Promise<PgbenchRun> {
  const u = new URL(url);
  const clients = o.clients ?? 4;
  const args = ['-n', '-c', String(clients), '-j', String(Math.min(2, clients))];
  if (o.transactionsPerClient !== undefined) args.push('-t', String(o.transactionsPerClient));
  else args.push('-T', String(o.seconds ?? 10));
  if (o.rate !== undefined) args.push('-R', String(o.rate));
  args.push(...('file' in o.script ? ['-f', o.script.file] : ['-b', o.script.builtin]));
  args.push('-h', u.hostname, '-p', u.port || '5432', '-U', decodeURIComponent(u.username || 'postgres'), u.pathname.slice(1));
  return new Promise((resolve, reject) => {
    const spawned = spawn('pgbench', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const p = o.track ? o.track(spawned) : spawned;
    let out = '';
    p.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    p.once('error', reject);
    // 'close', not 'exit': the report on stdout may still be unread when the process exits.
    p.once('close', (code) => {
      if (code !== 0) return reject(new Error(`pgbench failed (${code}):\n${out}`));
      const transactions = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1] ?? Number.NaN);
      const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1] ?? Number.NaN);
      resolve({ transactions, tps, output: out });
    });
  });
}
