/**
 * Capture overhead: single-row INSERT and UPDATE transactions per second on a table with and
 * without the capture triggers, same database, same run, pgbench with 4 clients. Rounds
 * alternate between the two tables so background load hits both alike; the median is reported.
 * Then the trigger's own time per row, which commits and other work on the machine move less.
 *
 *   npx tsx agent/bench-capture.ts [--seconds 5] [--rounds 5] [--clients 4] [--merge row|column|counter] [--admin-url postgres://…/postgres]
 *
 * `--merge column` makes the synced table column-level, `counter` also declares `qty` additive
 * (docs/sync-semantics.md "Column-level tables and counters"): the capture then stamps every column.
 *
 * Needs `pgbench` on PATH. Not a test: prints a table and the overhead per workload.
 *
 * Where the cost goes (measured on a 2-core machine with fsync on): both tables are bound by
 * WAL flushes. A captured update writes 8 WAL records per transaction instead of 3 (row_version,
 * outbox row and its two indexes), and in the minutes after a checkpoint 0.5 full-page images
 * instead of 0.16, because it dirties a random row_version page as well as the table's: 4.3 kB of
 * WAL per transaction instead of 1.4 kB. The trigger itself costs about 40 µs per row, measured
 * here as well (`cpuPerRow`: single-row writes in a DO block, without commits).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { install } from './install.js';

export interface CaptureOptions {
  seconds: number;
  rounds: number;
  clients: number;
  adminUrl: string;
  rows: number;
  /** How the synced table merges: whole rows, by column, by column with `qty` a counter. */
  merge: 'row' | 'column' | 'counter';
}

export type Options = CaptureOptions;

export const CAPTURE_DEFAULTS: CaptureOptions = {
  seconds: 5,
  rounds: 5,
  clients: 4,
  adminUrl: process.env.BENCH_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
  rows: 100_000,
  merge: 'row',
};

export type CaptureWorkload = 'insert' | 'update';

/** Medians over the rounds, per workload: tps without triggers, with them, with NOTIFY on every write. */
export interface CaptureResult {
  readonly options: CaptureOptions;
  readonly workloads: Record<
    CaptureWorkload,
    {
      readonly plain: number;
      readonly synced: number;
      readonly notify: number;
      /** Median over rounds of 1 − synced/plain (rounds measured back to back). */
      readonly overhead: number;
      readonly notifyOverhead: number;
      /** Lowest and highest overhead of a single round, to judge the noise. */
      readonly overheadRange: readonly [number, number];
      /**
       * Server time per written row without and with the trigger, µs: 20,000 single-row writes in
       * one DO block (no commits, no client), median of 3. Unlike tps, WAL flushes and other
       * work on the machine barely move it, so it shows what the trigger itself costs.
       */
      readonly cpuPerRow: { readonly plain: number; readonly synced: number };
    }
  >;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { ...CAPTURE_DEFAULTS };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1] ?? ''];
    if (k === '--seconds') o.seconds = Number(v);
    else if (k === '--rounds') o.rounds = Number(v);
    else if (k === '--clients') o.clients = Number(v);
    else if (k === '--admin-url') o.adminUrl = v;
    else if (k === '--rows') o.rows = Number(v);
    else if (k === '--merge' && (v === 'row' || v === 'column' || v === 'counter')) o.merge = v;
    else throw new Error(`unknown option ${k}`);
  }
  return o;
}

const TABLE = (name: string) =>
  `CREATE TABLE public.${name} (id bigint PRIMARY KEY, name text NOT NULL, qty int NOT NULL, price numeric(10,2), updated timestamptz NOT NULL DEFAULT now())`;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

function pgbench(url: URL, script: string, o: Options): number {
  const r = spawnSync(
    'pgbench',
    ['-n', '-c', String(o.clients), '-j', String(Math.min(o.clients, 2)), '-T', String(o.seconds), '-f', script, '-h', url.hostname, '-p', url.port || '5432', '-U', decodeURIComponent(url.username || 'postgres'), url.pathname.slice(1)],
    { encoding: 'utf8', env: { ...process.env, PGPASSWORD: decodeURIComponent(url.password) } },
  );
  const m = /tps = ([\d.]+) \(without initial connection time\)/.exec(r.stdout);
  if (!m) throw new Error(`pgbench failed: ${r.stderr || r.stdout}`);
  return Number(m[1]);
}

/** Runs the benchmark in a database of its own (dropped at the end); progress goes to stderr. */
export async function runCaptureBench(o: CaptureOptions = CAPTURE_DEFAULTS): Promise<CaptureResult> {
  const name = `hbt_${Date.now().toString(36)}_bench_capture`;
  const admin = new pg.Client({ connectionString: o.adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  const url = new URL(o.adminUrl);
  url.pathname = `/${name}`;
  const pool = new pg.Pool({ connectionString: url.toString(), max: 2 });
  pool.on('error', () => undefined);
  const dir = mkdtempSync(join(tmpdir(), 'bench-capture-'));
  try {
    await pool.query(`${TABLE('plain')}; ${TABLE('synced')}`);
    const merge = o.merge === 'column' ? { merge: 'column' as const } : o.merge === 'counter' ? { additive: ['qty'] } : {};
    await install(pool, { tenantId: 'bench', branchId: 'bench-1', tables: [{ name: 'public.synced', ...merge }] });
    const preload = (t: string) =>
      `INSERT INTO ${t} SELECT g, 'item ' || g, g % 100, (g % 1000) / 10.0 FROM generate_series(1, ${o.rows}) g`;
    await pool.query(preload('plain'));
    await pool.query(preload('synced'));
    await pool.query(`DELETE FROM hubsync.change_log`);
    await pool.query(`VACUUM ANALYZE`);

    const scripts: Record<string, string> = {};
    for (const t of ['plain', 'synced']) {
      scripts[`insert:${t}`] = join(dir, `insert-${t}.sql`);
      writeFileSync(
        scripts[`insert:${t}`] as string,
        `\\set id random(${o.rows + 1}, 9000000000000)\nINSERT INTO ${t} (id, name, qty, price) VALUES (:id, 'new item', 1, 9.99);\n`,
      );
      scripts[`update:${t}`] = join(dir, `update-${t}.sql`);
      writeFileSync(
        scripts[`update:${t}`] as string,
        `\\set id random(1, ${o.rows})\nUPDATE ${t} SET qty = qty + 1, updated = now() WHERE id = :id;\n`,
      );
    }
    // Rounds run plain and synced back to back (order alternating), so each pair sees the same
    // background load; the overhead is the median of the pairs' ratios.
    const results: Record<string, number[]> = {};
    const ratios: Record<string, number[]> = {};
    for (let round = 0; round < o.rounds; round++) {
      for (const workload of ['insert', 'update']) {
        const variants = ['plain', 'synced', 'notify'];
        const order = round % 2 === 0 ? variants : [...variants].reverse();
        const tps: Record<string, number> = {};
        for (const v of order) {
          const t = v === 'plain' ? 'plain' : 'synced';
          // `notify`: the agent sleeps, so every write NOTIFYs (the worst case for capture).
          await pool.query(`UPDATE hubsync.wake SET waiting = $1`, [v === 'notify']);
          // The agent keeps the outbox short; do the same between runs.
          await pool.query(`DELETE FROM hubsync.change_log`);
          tps[v] = pgbench(url, scripts[`${workload}:${t}`] as string, o);
          (results[`${workload}:${v}`] ??= []).push(tps[v] as number);
        }
        for (const v of ['synced', 'notify']) (ratios[`${workload}:${v}`] ??= []).push((tps[v] as number) / (tps.plain as number));
        console.error(`round ${round + 1} ${workload}: ${variants.map((v) => `${v} ${(tps[v] ?? 0).toFixed(0)}`).join(', ')} tps`);
      }
    }
    // Trigger cost without commits: single-row writes in a loop inside one DO block.
    const perRow: Record<string, number[]> = {};
    const LOOP = 20_000;
    for (let round = 0; round < 3; round++) {
      for (const t of ['plain', 'synced']) {
        for (const w of ['insert', 'update'] as const) {
          await pool.query(`DELETE FROM hubsync.change_log`);
          const write =
            w === 'update'
              ? `UPDATE ${t} SET qty = qty + 1, updated = now() WHERE id = (i * 7919) % ${o.rows} + 1`
              : `INSERT INTO ${t} (id, name, qty, price) VALUES (${10_000_000_000_000 + round * LOOP} + i, 'new item', 1, 9.99)`;
          const t0 = performance.now();
          await pool.query(`DO $$ BEGIN FOR i IN 1..${LOOP} LOOP ${write}; END LOOP; END $$`);
          (perRow[`${w}:${t}`] ??= []).push(((performance.now() - t0) * 1000) / LOOP);
        }
      }
    }
    const summary = (w: CaptureWorkload) => ({
      cpuPerRow: { plain: median(perRow[`${w}:plain`] ?? []), synced: median(perRow[`${w}:synced`] ?? []) },
      plain: median(results[`${w}:plain`] ?? []),
      synced: median(results[`${w}:synced`] ?? []),
      notify: median(results[`${w}:notify`] ?? []),
      overhead: 1 - median(ratios[`${w}:synced`] ?? []),
      notifyOverhead: 1 - median(ratios[`${w}:notify`] ?? []),
      overheadRange: [1 - Math.max(...(ratios[`${w}:synced`] ?? [])), 1 - Math.min(...(ratios[`${w}:synced`] ?? []))] as const,
    });
    return { options: o, workloads: { insert: summary('insert'), update: summary('update') } };
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await pool.end();
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.end();
  }
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const r = await runCaptureBench(o);
  console.log(`\nCapture overhead (${o.merge} merge), pgbench ${o.clients} clients, single-row transactions, ${o.seconds} s runs × ${o.rounds} rounds`);
  console.log('workload  without triggers  with triggers  overhead  with NOTIFY on every write  overhead');
  const pct = (x: number) => `${(x * 100).toFixed(1).padStart(7)} %`;
  for (const w of ['insert', 'update'] as const) {
    const x = r.workloads[w];
    console.log(
      `${w.padEnd(8)}  ${x.plain.toFixed(0).padStart(16)}  ${x.synced.toFixed(0).padStart(13)}  ${pct(x.overhead)}  ${x.notify.toFixed(0).padStart(26)}  ${pct(x.notifyOverhead)}`,
    );
  }
  console.log('(tps: medians; overhead: median over rounds of 1 − with/without, measured back to back)');
  for (const w of ['insert', 'update'] as const) {
    const c = r.workloads[w].cpuPerRow;
    console.log(`${w}: ${c.plain.toFixed(1)} µs per row without triggers, ${c.synced.toFixed(1)} with (trigger ${(c.synced - c.plain).toFixed(1)} µs), server time without commits`);
  }
}

// Run as a command (`npx tsx agent/bench-capture.ts`), not when bench/sync.ts imports it.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  });
}
