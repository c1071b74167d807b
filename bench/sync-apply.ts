/**
 * Apply engine alone, no hub: how many changes per second one branch applies from `sync.deliver`
 * pages, for the shapes the sync benchmark produces (one-row source transactions, multi-row
 * transactions, updates of existing rows). Changes come from a real branch's outbox through the
 * in-process relay of agent/testing; the figure is the apply side's ceiling.
 *
 *   npx tsx bench/sync-apply.ts [--rows 20000] [--page 100] [--admin-url postgres://…/postgres]
 */
import pg from 'pg';
import { ApplyEngine } from '../agent/apply/engine.js';
import { openBranch, Relay } from '../agent/testing/branches.js';

interface Options {
  rows: number;
  page: number;
  adminUrl: string;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { rows: 20_000, page: 100, adminUrl: process.env.BENCH_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1] ?? ''];
    if (k === '--rows') o.rows = Number(v);
    else if (k === '--page') o.page = Number(v);
    else if (k === '--admin-url') o.adminUrl = v;
    else throw new Error(`unknown option ${k}`);
  }
  return o;
}

const DDL = `CREATE TABLE public.item (id bigint PRIMARY KEY, name text NOT NULL, qty int NOT NULL, price numeric(10,2), updated timestamptz NOT NULL DEFAULT now())`;

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const admin = new pg.Client({ connectionString: o.adminUrl });
  await admin.connect();
  const stamp = Date.now().toString(36);
  const names = ['src', 'dst'].map((n) => `hbt_${stamp}_bench_apply_${n}`);
  for (const n of names) await admin.query(`CREATE DATABASE "${n}"`);
  const urlOf = (n: string) => {
    const u = new URL(o.adminUrl);
    u.pathname = `/${n}`;
    return u.toString();
  };
  const [src, dst] = await Promise.all(names.map((n, i) => openBranch(urlOf(n), `b${i + 1}`, DDL, [{ name: 'public.item' }])));
  if (!src || !dst) throw new Error('unreachable');
  try {
    const workloads: { name: string; sql: (base: number) => string; txs: number }[] = [
      {
        name: 'insert, 1 row per transaction',
        txs: o.rows,
        sql: (i) => `INSERT INTO item (id, name, qty, price) VALUES (${i}, 'item ${i}', 1, 9.99)`,
      },
      {
        name: 'update, 1 row per transaction',
        txs: o.rows,
        sql: (i) => `UPDATE item SET qty = qty + 1, updated = now() WHERE id = ${i}`,
      },
      {
        name: 'insert, 10 rows per transaction',
        txs: o.rows / 10,
        sql: (i) => `INSERT INTO item (id, name, qty, price) SELECT g, 'item ' || g, 1, 9.99 FROM generate_series(${1_000_000 + i * 10}, ${1_000_000 + i * 10 + 9}) g`,
      },
    ];
    const relay = new Relay();
    let from = 0;
    console.log(`apply only, pages of ${o.page} entries`);
    for (const w of workloads) {
      // Source transactions committed one by one (the pgbench shape), batched by the outbox.
      const c = await src.pool.connect();
      try {
        for (let i = 1; i <= w.txs; i += 500) {
          const stmts: string[] = [];
          for (let j = i; j < i + 500 && j <= w.txs; j++) stmts.push(`BEGIN; ${w.sql(j)}; COMMIT;`);
          await c.query(stmts.join('\n'));
        }
      } finally {
        c.release();
      }
      await relay.collect(src, 100);
      const pages = relay.pages(dst.id, from, o.page);
      from = relay.log.length;
      const engine = new ApplyEngine(dst.pool, dst.tables, { branchId: dst.id, maxForwardSkewMs: 300_000 });
      const t0 = performance.now();
      let n = 0;
      for (const p of pages) {
        const r = await engine.deliver(p);
        n += r.applied;
      }
      const s = (performance.now() - t0) / 1000;
      console.log(`${w.name.padEnd(34)} ${String(n).padStart(7)} rows  ${(n / s).toFixed(0).padStart(7)} rows/s  ${((s * 1000) / pages.length).toFixed(1)} ms/page`);
    }
  } finally {
    await Promise.all([src.close(), dst.close()]);
    for (const n of names) await admin.query(`DROP DATABASE IF EXISTS "${n}" WITH (FORCE)`);
    await admin.end();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
