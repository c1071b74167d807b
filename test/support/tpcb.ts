/**
 * pgbench's TPC-B tables for sync tests and benchmarks (issue 19): the schema and data
 * `pgbench -i -s 1` makes, the same at every branch, with a key on history (a synced table
 * needs one), and the tables listed in the order TPC-B updates them, which is the order the
 * apply locks them in (docs/architecture.md "Apply").
 */
import { pgbench, type PgbenchRun } from './pgbench.js';

export type { PgbenchRun };

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

/** pgbench's built-in TPC-B script against `url` for `seconds`, `clients` clients, no vacuum. */
export function tpcb(url: string, seconds: number, clients = 4): Promise<PgbenchRun> {
  return pgbench(url, { clients, seconds, script: { builtin: 'tpcb-like' } });
}
