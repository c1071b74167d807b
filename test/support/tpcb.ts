/**
 * pgbench's TPC-B tables for sync tests and benchmarks (issue 19): the schema and data
 * `pgbench -i -s 1` makes, the same at every branch, with a key on history (a synced table
 * needs one), and the tables listed in the order TPC-B updates them, which is the order the
 * apply locks them in (docs/architecture.md "Apply").
 */
import { spawn } from 'node:child_process';

/** The tables alone, for branches that get the rows from the hub. */
export const TPCB_SCHEMA = `
  CREATE TABLE pgbench_branches (bid int PRIMARY KEY, bbalance int, filler char(88));
  CREATE TABLE pgbench_tellers (tid int PRIMARY KEY, bid int, tbalance int, filler char(84));
  CREATE TABLE pgbench_accounts (aid int PRIMARY KEY, bid int, abalance int, filler char(84));
  CREATE TABLE pgbench_history (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), tid int, bid int, aid int, delta int, mtime timestamp, filler char(22));`;

export const TPCB_DDL = `${TPCB_SCHEMA}
  INSERT INTO pgbench_branches VALUES (1, 0, '');
  INSERT INTO pgbench_tellers SELECT g, 1, 0, '' FROM generate_series(1, 10) g;
  INSERT INTO pgbench_accounts SELECT g, 1, 0, '' FROM generate_series(1, 100000) g;`;

export const TPCB_TABLES: readonly { readonly name: string; readonly pk: readonly string[] }[] = [
  { name: 'public.pgbench_accounts', pk: ['aid'] },
  { name: 'public.pgbench_tellers', pk: ['tid'] },
  { name: 'public.pgbench_branches', pk: ['bid'] },
  { name: 'public.pgbench_history', pk: ['id'] },
];

/** One md5 over every synced table's rows, in key order: equal at two branches when they hold the same data. */
export const TPCB_FINGERPRINT = `SELECT md5(${TPCB_TABLES.map((t) => `(SELECT coalesce(string_agg(x::text, ',' ORDER BY ${t.pk.map((c) => `x.${c}`).join(', ')}), '') FROM ${t.name} x)`).join(" || '|' || ")}) AS f`;

export interface PgbenchRun {
  readonly transactions: number;
  readonly tps: number;
  readonly output: string;
}

/** pgbench's built-in TPC-B script against `url` for `seconds`, `clients` clients, no vacuum. */
export function tpcb(url: string, seconds: number, clients = 4): Promise<PgbenchRun> {
  const u = new URL(url);
  const args = ['-n', '-c', String(clients), '-j', '2', '-T', String(seconds), '-b', 'tpcb-like'];
  args.push('-h', u.hostname, '-p', u.port || '5432', '-U', decodeURIComponent(u.username || 'postgres'), u.pathname.slice(1));
  return new Promise((resolve, reject) => {
    const p = spawn('pgbench', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.once('error', reject);
    p.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`pgbench failed (${code}):\n${out}`));
      const transactions = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1] ?? Number.NaN);
      const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1] ?? Number.NaN);
      resolve({ transactions, tps, output: out });
    });
  });
}
