/**
 * What `npm run bench:peers` measures, the same way for every system: end-to-end rows/s for a
 * fixed number of transactions (from pgbench's start until every destination has every row),
 * latency at a fixed rate (`seen` − `created`, bench/peers/peer.ts), and the capture cost at the
 * source with the replicator stopped (pgbench against the table with the system's capture,
 * beside the same table in a plain database of the same cluster).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { queryOnce } from '../../test/support/pg-cluster.js';
import { pgbench } from '../../test/support/pgbench.js';
import { sleep, track } from '../lib/hub-process.js';
import type { PeerSite } from './peer.js';

export const CLIENTS = 4;

export interface Workload {
  readonly label: string;
  readonly rowsPerTx: number;
  readonly script: string;
}

const PAYLOAD = `'pgbench-style insert, about fifty bytes of payload'`;
export const ONE_ROW: Workload = {
  label: '1-row tx',
  rowsPerTx: 1,
  script: `INSERT INTO peer_item (client, qty, payload) VALUES (:client_id, 1, ${PAYLOAD});\n`,
};
export const TEN_ROWS: Workload = {
  label: '10-row tx',
  rowsPerTx: 10,
  script: `INSERT INTO peer_item (client, qty, payload) SELECT :client_id, g, ${PAYLOAD} FROM generate_series(1, 10) g;\n`,
};

export function scriptFile(dir: string, w: Workload): string {
  const file = join(dir, `peer-${w.rowsPerTx}.sql`);
  writeFileSync(file, w.script);
  return file;
}

async function scalar(url: string, sql: string, params: unknown[] = []): Promise<number> {
  const rows = await queryOnce<{ v: string | null }>(url, sql, params);
  return Number(rows[0]?.v ?? 0);
}

const maxId = (url: string) => scalar(url, `SELECT coalesce(max(id), 0)::text AS v FROM public.peer_item`);

export interface Throughput {
  readonly rows: number;
  /** Rows per second from pgbench's start until the last destination had every row. */
  readonly rowsPerSecond: number;
  /** What the source alone committed per second (pgbench's own figure × rows per transaction). */
  readonly sourceRowsPerSecond: number;
  /** Rows missing at the slowest destination when the time limit struck (0: finished). */
  readonly missing: number;
}

/** `rows` rows in transactions of the workload, as fast as 4 clients go; waits for every destination. */
export async function throughput(site: PeerSite, dir: string, w: Workload, rows: number, limitMs = 300_000): Promise<Throughput> {
  const base = await maxId(site.source.url);
  const perClient = Math.ceil(rows / w.rowsPerTx / CLIENTS);
  const expected = perClient * CLIENTS * w.rowsPerTx;
  const t0 = performance.now();
  const run = await pgbench(site.source.url, { clients: CLIENTS, transactionsPerClient: perClient, script: { file: scriptFile(dir, w) }, track });
  const clients = site.destinations.map((d) => new pg.Client({ connectionString: d.url }));
  await Promise.all(clients.map((c) => c.connect()));
  let missing = 0;
  try {
    const pending = new Set(clients);
    for (;;) {
      missing = 0;
      for (const c of [...pending]) {
        const { rows: r } = await c.query<{ n: string }>(`SELECT count(*)::text AS n FROM public.peer_item WHERE id > $1 AND client >= 0`, [base]);
        const left = expected - Number(r[0]?.n ?? 0);
        if (left <= 0) pending.delete(c);
        else missing = Math.max(missing, left);
      }
      if (pending.size === 0 || performance.now() - t0 > limitMs) break;
      await sleep(50);
    }
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
  const seconds = (performance.now() - t0) / 1000;
  return { rows: expected, rowsPerSecond: (expected - missing) / seconds, sourceRowsPerSecond: run.tps * w.rowsPerTx, missing };
}

export interface Latency {
  readonly offeredRowsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** One-row transactions at `rate` rows/s for `warmup + seconds`; percentiles over the last `seconds`, the worst destination's. */
export async function latency(site: PeerSite, dir: string, rate: number, seconds: number, warmup: number): Promise<Latency> {
  const base = await maxId(site.source.url);
  await pgbench(site.source.url, { clients: CLIENTS, seconds: warmup + seconds, rate, script: { file: scriptFile(dir, ONE_ROW) }, track });
  const last = await maxId(site.source.url);
  const expected = await scalar(site.source.url, `SELECT count(*)::text AS v FROM public.peer_item WHERE id > $1 AND id <= $2 AND client >= 0`, [base, last]);
  const result = { offeredRowsPerSecond: rate, p50Ms: 0, p99Ms: 0, maxMs: 0 };
  for (const d of site.destinations) {
    const deadline = Date.now() + 120_000;
    while ((await scalar(d.url, `SELECT count(*)::text AS v FROM public.peer_item WHERE id > $1 AND id <= $2 AND client >= 0`, [base, last])) < expected) {
      if (Date.now() > deadline) throw new Error(`${d.db} did not receive the latency run's rows within 120 s`);
      await sleep(100);
    }
    const c = new pg.Client({ connectionString: d.url });
    await c.connect();
    try {
      const { rows } = await c.query<{ p50: number; p99: number; max: number }>(
        `WITH w AS (SELECT max(created) - make_interval(secs => $3) AS since FROM public.peer_item WHERE id > $1 AND id <= $2)
         SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50, percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99, max(ms) AS max
           FROM (SELECT (extract(epoch FROM seen - created) * 1000)::float8 AS ms FROM public.peer_item, w WHERE id > $1 AND id <= $2 AND client >= 0 AND created > w.since) x`,
        [base, last, seconds],
      );
      const r = rows[0];
      if (r && r.p99 > result.p99Ms) Object.assign(result, { p50Ms: r.p50, p99Ms: r.p99, maxMs: r.max });
    } finally {
      await c.end();
    }
  }
  return result;
}

export interface CaptureCost {
  readonly plainTps: number;
  readonly capturedTps: number;
  /** Extra time one transaction takes with the capture, per client: 4/captured − 4/plain, in µs. */
  readonly extraMicros: number;
}

/**
 * pgbench for `seconds` against a plain database, then against the source with its capture
 * (the replicator stopped), alternated `rounds` times; medians of each.
 */
export async function captureCost(site: PeerSite, plainUrl: string, dir: string, w: Workload, seconds: number, rounds: number): Promise<CaptureCost> {
  const plain: number[] = [];
  const captured: number[] = [];
  const file = scriptFile(dir, w);
  for (let i = 0; i < rounds; i++) {
    plain.push((await pgbench(plainUrl, { clients: CLIENTS, seconds, script: { file }, track })).tps);
    captured.push((await pgbench(site.source.url, { clients: CLIENTS, seconds, script: { file }, track })).tps);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  const p = median(plain);
  const c = median(captured);
  return { plainTps: p, capturedTps: c, extraMicros: (CLIENTS / c - CLIENTS / p) * 1e6 };
}
