/**
 * `npm run bench:peers [-- --rounds 2] [--rows 20000] [--latency-seconds 10] [--warmup 3]
 * [--capture-seconds 5] [--capture-rounds 2] [--systems hub-broker,bucardo,native]
 * [--destinations 1,3] [--no-write]`: Hub-Broker beside Bucardo and PostgreSQL's own logical
 * replication (issue 17), same table, same pgbench scripts, same clients, on throwaway clusters
 * this script creates (source, destinations and control/hub database in three clusters,
 * `wal_level=logical`, defaults otherwise; test/support/pg-cluster.ts). The systems run one after
 * the other, alternated (A B C A B C), so the host's drift shows as a range, and the ratios are
 * taken within a round. Needs Debian's `bucardo` and `postgresql-plperl-<version>` for Bucardo
 * (installed here when missing and this runs as root). Prints tables and replaces
 * `## Peers` in docs/benchmarks.md.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { runUnderBenchLock } from './lib/bench-lock.js';
import { cleanupAll, onCleanup } from './lib/hub-process.js';
import { loadLine, machineLine, markdownTable, timestamp, writeSection } from './lib/report.js';
import { bucardo } from './peers/bucardo.js';
import { startCluster as startPgCluster, type Cluster } from '../test/support/pg-cluster.js';
import { FLOOR_DDL } from './peers/floor.js';
import { hubBroker } from './peers/hub-broker.js';
import { native } from './peers/native.js';
import { SEEN_TRIGGER_DDL, TABLE_DDL, type Peer, type PeerName, type PeerSite } from './peers/peer.js';
import { CLIENTS, captureCost, latency, ONE_ROW, TEN_ROWS, throughput } from './peers/workload.js';

const PEERS: Record<PeerName, Peer> = { 'hub-broker': hubBroker, bucardo, native };
const TITLE: Record<PeerName, string> = { 'hub-broker': 'Hub-Broker', bucardo: 'Bucardo', native: 'logical replication' };
const FIXED_RATE = 1_000;

interface Options {
  rounds: number;
  rows: number;
  latencySeconds: number;
  warmup: number;
  captureSeconds: number;
  captureRounds: number;
  systems: PeerName[];
  destinations: number[];
  write: boolean;
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = { rounds: 2, rows: 20_000, latencySeconds: 10, warmup: 3, captureSeconds: 5, captureRounds: 2, systems: ['hub-broker', 'bucardo', 'native'], destinations: [1, 3], write: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const num = (): number => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0) throw new Error(`${a} needs a positive number`);
      return v;
    };
    if (a === '--rounds') o.rounds = Math.round(num());
    else if (a === '--rows') o.rows = Math.round(num());
    else if (a === '--latency-seconds') o.latencySeconds = num();
    else if (a === '--warmup') o.warmup = num();
    else if (a === '--capture-seconds') o.captureSeconds = num();
    else if (a === '--capture-rounds') o.captureRounds = Math.round(num());
    else if (a === '--no-write') o.write = false;
    else if (a === '--systems') {
      o.systems = (argv[++i] ?? '').split(',') as PeerName[];
      for (const s of o.systems) if (!(s in PEERS)) throw new Error(`unknown system ${s}; use ${Object.keys(PEERS).join(',')}`);
    } else if (a === '--destinations') {
      o.destinations = (argv[++i] ?? '').split(',').map(Number);
      if (o.destinations.some((d) => !Number.isInteger(d) || d < 1 || d > 8)) throw new Error('--destinations takes counts from 1 to 8, e.g. 1,3');
    } else throw new Error(`unknown argument ${a}; see the comment at the top of bench/peers.ts`);
  }
  return o;
}

/** Debian's bucardo and PL/Perl for the server's major version, when missing. */
function ensureBucardo(): void {
  const major = /(\d+)/.exec(spawnSync('pg_config', ['--version'], { encoding: 'utf8' }).stdout ?? '')?.[1] ?? '15';
  const have = (pkg: string) => spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' }).stdout?.includes('install ok installed') ?? false;
  const missing = ['bucardo', `postgresql-plperl-${major}`].filter((p) => !have(p));
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) throw new Error(`Bucardo needs Debian packages ${missing.join(' ')}: apt-get install ${missing.join(' ')}`);
  console.error(`installing ${missing.join(' ')}…`);
  for (const args of [['update', '-qq'], ['install', '-y', '-qq', ...missing]]) {
    const r = spawnSync('apt-get', args, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    if (r.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed`);
  }
}

// ------------------------------------------------------------------ one run of one system

type Measure = 'e2e-1' | 'e2e-10' | 'source-1' | 'source-10' | 'p50' | 'p99' | 'capture-1' | 'capture-10' | 'floor-1' | 'floor-10';
/** figures[measure][destinations][system] = one value per round */
type Figures = Map<string, number[]>;
const key = (m: Measure, dests: number, s: PeerName) => `${m}/${dests}/${s}`;

interface Clusters {
  readonly source: Cluster;
  readonly dest: Cluster;
  readonly control: Cluster;
  /** The same table without any capture, in the source's cluster: the capture cost's baseline. */
  readonly plainUrl: string;
  /** The same table with the least capture a trigger can do (bench/peers/floor.ts). */
  readonly floorUrl: string;
}

let runs = 0;

/** A throwaway cluster, removed at clean-up. */
async function startCluster(label: string): Promise<Cluster> {
  const c = await startPgCluster(label);
  onCleanup(() => c.stop());
  return c;
}

async function makeSite(c: Clusters, dests: number): Promise<{ site: PeerSite; drop: () => Promise<void> }> {
  const runId = `r${process.pid}_${++runs}`;
  const srcDb = `src_${runId}`;
  const srcUrl = await c.source.createDatabase(srcDb);
  await c.source.query(TABLE_DDL, srcDb);
  const destinations: PeerSite['destinations'][number][] = [];
  for (let i = 1; i <= dests; i++) {
    const db = `dst${i}_${runId}`;
    const url = await c.dest.createDatabase(db);
    await c.dest.query(TABLE_DDL, db);
    await c.dest.query(SEEN_TRIGGER_DDL, db);
    destinations.push({ cluster: c.dest, db, url });
  }
  const site: PeerSite = { source: { cluster: c.source, db: srcDb, url: srcUrl }, destinations, control: c.control, runId };
  return {
    site,
    drop: async () => {
      await c.source.dropDatabase(srcDb);
      for (const d of destinations) await c.dest.dropDatabase(d.db);
    },
  };
}

async function measure(o: Options, c: Clusters, dir: string, figures: Figures, system: PeerName, dests: number): Promise<void> {
  const { site, drop } = await makeSite(c, dests);
  const add = (m: Measure, v: number) => {
    const k = key(m, dests, system);
    figures.set(k, [...(figures.get(k) ?? []), v]);
  };
  const run = await PEERS[system].setUp(site);
  try {
    await run.start();
    // Latency first, on a fresh set-up: Bucardo, for one, slows down while its delta tables
    // still hold a burst of earlier rows.
    if (dests === 1) {
      const l = await latency(site, dir, FIXED_RATE, o.latencySeconds, o.warmup);
      add('p50', l.p50Ms);
      add('p99', l.p99Ms);
      console.error(`  ${TITLE[system]}, ${FIXED_RATE} rows/s: p50 ${l.p50Ms.toFixed(1)} ms, p99 ${l.p99Ms.toFixed(1)} ms, max ${l.maxMs.toFixed(1)} ms`);
    }
    for (const w of [ONE_ROW, TEN_ROWS] as const) {
      const t = await throughput(site, dir, w, o.rows);
      const tag = w.rowsPerTx === 1 ? '1' : '10';
      add(`e2e-${tag}`, t.rowsPerSecond);
      add(`source-${tag}`, t.sourceRowsPerSecond);
      console.error(
        `  ${TITLE[system]}, ${dests} dest., ${w.label}: ${Math.round(t.rowsPerSecond)} rows/s end to end (source ${Math.round(t.sourceRowsPerSecond)} rows/s)${t.missing > 0 ? `, ${t.missing} rows missing at the time limit` : ''}`,
      );
    }
    if (dests === 1) {
      await run.stop();
      for (const w of [ONE_ROW, TEN_ROWS] as const) {
        const cost = await captureCost(site, c.plainUrl, dir, w, o.captureSeconds, o.captureRounds);
        add(w.rowsPerTx === 1 ? 'capture-1' : 'capture-10', cost.extraMicros);
        console.error(`  ${TITLE[system]}, capture, ${w.label}: ${Math.round(cost.capturedTps)} tps vs ${Math.round(cost.plainTps)} plain, +${Math.round(cost.extraMicros)} µs per transaction`);
        if (system !== 'hub-broker') continue;
        // Beside Hub-Broker's own: the floor of any trigger-based capture, same moment.
        const floorSite = { ...site, source: { ...site.source, url: c.floorUrl } };
        const floor = await captureCost(floorSite, c.plainUrl, dir, w, o.captureSeconds, o.captureRounds);
        add(w.rowsPerTx === 1 ? 'floor-1' : 'floor-10', floor.extraMicros);
        console.error(`  one outbox row per change (floor), ${w.label}: +${Math.round(floor.extraMicros)} µs per transaction`);
      }
    }
  } finally {
    await run.tearDown();
    await drop();
  }
}

// ------------------------------------------------------------------ report

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s.length % 2 ? (s[(s.length - 1) / 2] as number) : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
};
const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '–');
const range = (xs: readonly number[] | undefined, digits = 0) => {
  if (!xs || xs.length === 0) return '–';
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  return xs.length === 1 || fmt(lo, digits) === fmt(hi, digits) ? fmt(median(xs), digits) : `${fmt(median(xs), digits)} (${fmt(lo, digits)}–${fmt(hi, digits)})`;
};
/** Per-round ratios of a ÷ b, as "median (min–max)". */
const ratios = (a: readonly number[] | undefined, b: readonly number[] | undefined) => {
  if (!a || !b || a.length === 0 || a.length !== b.length) return { text: '–', values: [] as number[] };
  const values = a.map((v, i) => v / (b[i] as number));
  const small = Math.min(...values.map(Math.abs)) < 0.1;
  return { text: range(values, small ? 4 : 2), values };
};

interface Row {
  readonly label: string;
  readonly m: Measure;
  readonly dests: number;
  readonly digits: number;
  /** No ratio to logical replication: its figure is about zero (capture cost). */
  readonly noNativeRatio?: boolean;
  /** Goal on Hub-Broker ÷ Bucardo and ÷ native (per-round ratios, all rounds), and on Hub-Broker's own figure. */
  readonly goal?: { bucardoAtLeast?: number; bucardoAtMost?: number; nativeAtLeast?: number; ownAtMost?: number };
}

function report(o: Options, figures: Figures, started: string, load: string): { text: string; tables: string } {
  const rows: Row[] = [];
  for (const d of o.destinations) {
    rows.push({ label: `end to end, 1-row tx, ${d} dest. (rows/s)`, m: 'e2e-1', dests: d, digits: 0, goal: { bucardoAtLeast: 1.5, nativeAtLeast: 0.6 } });
    rows.push({ label: `end to end, 10-row tx, ${d} dest. (rows/s)`, m: 'e2e-10', dests: d, digits: 0, goal: { bucardoAtLeast: 1.5, nativeAtLeast: 0.6 } });
    rows.push({ label: `source alone during it, 1-row tx, ${d} dest. (rows/s)`, m: 'source-1', dests: d, digits: 0 });
    rows.push({ label: `source alone during it, 10-row tx, ${d} dest. (rows/s)`, m: 'source-10', dests: d, digits: 0 });
  }
  if (o.destinations.includes(1)) {
    rows.push({ label: `latency p50 at ${FIXED_RATE} rows/s (ms)`, m: 'p50', dests: 1, digits: 1 });
    rows.push({ label: `latency p99 at ${FIXED_RATE} rows/s (ms)`, m: 'p99', dests: 1, digits: 1, goal: { bucardoAtMost: 0.1, ownAtMost: 30 } });
    rows.push({ label: 'capture cost, 1-row tx (µs per tx)', m: 'capture-1', dests: 1, digits: 0, noNativeRatio: true, goal: { bucardoAtMost: 0.6 } });
    rows.push({ label: 'capture cost, 10-row tx (µs per tx)', m: 'capture-10', dests: 1, digits: 0, noNativeRatio: true, goal: { bucardoAtMost: 0.6 } });
    if (o.systems.includes('hub-broker')) {
      // In the Hub-Broker column: the floor (bench/peers/floor.ts), against Bucardo's capture.
      rows.push({ label: 'floor: one outbox row per change, 1-row tx (µs per tx)', m: 'floor-1', dests: 1, digits: 0, noNativeRatio: true });
      rows.push({ label: 'floor: one outbox row per change, 10-row tx (µs per tx)', m: 'floor-10', dests: 1, digits: 0, noNativeRatio: true });
    }
  }
  const get = (r: Row, s: PeerName) => figures.get(key(r.m, r.dests, s)) ?? (r.m.startsWith('floor') && s === 'bucardo' ? figures.get(key(r.m === 'floor-1' ? 'capture-1' : 'capture-10', r.dests, s)) : undefined);
  const table = markdownTable(
    ['measure', 'Hub-Broker', 'Bucardo', 'logical replication', 'Hub-Broker ÷ Bucardo', 'Hub-Broker ÷ logical', 'goal', 'met'],
    rows.map((r) => {
      const hb = get(r, 'hub-broker');
      const vsB = ratios(hb, get(r, 'bucardo'));
      const vsN = r.noNativeRatio ? { text: '–', values: [] } : ratios(hb, get(r, 'native'));
      const goals: string[] = [];
      const met: boolean[] = [];
      const g = r.goal;
      if (g?.bucardoAtLeast !== undefined) {
        goals.push(`≥ ${g.bucardoAtLeast}× Bucardo`);
        met.push(vsB.values.length > 0 && vsB.values.every((v) => v >= (g.bucardoAtLeast as number)));
      }
      if (g?.nativeAtLeast !== undefined) {
        goals.push(`≥ ${g.nativeAtLeast}× logical`);
        met.push(vsN.values.length > 0 && vsN.values.every((v) => v >= (g.nativeAtLeast as number)));
      }
      if (g?.bucardoAtMost !== undefined) {
        goals.push(`≤ ${g.bucardoAtMost}× Bucardo`);
        met.push(vsB.values.length > 0 && vsB.values.every((v) => v <= (g.bucardoAtMost as number)));
      }
      if (g?.ownAtMost !== undefined) {
        goals.push(`< ${g.ownAtMost} ms`);
        met.push((hb ?? []).length > 0 && (hb ?? []).every((v) => v < (g.ownAtMost as number)));
      }
      return [r.label, range(hb, r.digits), range(get(r, 'bucardo'), r.digits), range(get(r, 'native'), r.digits), vsB.text, vsN.text, goals.join(', ') || '–', met.length === 0 ? '–' : met.every(Boolean) ? 'yes' : 'no'];
    }),
  );
  const command = `npm run bench:peers${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  const text = `Measured ${started} on ${machineLine()} (${load}), with \`${command}\`.

Hub-Broker (hub and one agent per database as child processes, default settings), Bucardo
(Debian's ${bucardoVersion()}, one push sync, default settings) and PostgreSQL's logical
replication (a publication and one subscription per destination) on the same three throwaway
PostgreSQL ${pgVersion()} clusters (source, destinations, control or hub database;
\`wal_level=logical\`, defaults otherwise), same table, same pgbench scripts, ${CLIENTS} clients.
${o.rounds} rounds, each running the systems one after the other (A B C, then with 3
destinations A B C); figures are medians with the range over rounds, ratios are taken within
a round. Everything shares the machine's ${os.availableParallelism()} cores, the load generator included.

- **End to end**: ${o.rows.toLocaleString('en-US')} rows as fast as ${CLIENTS} pgbench clients commit them, from pgbench's
  start until the last destination has every row. "Source alone during it" is what pgbench
  committed per second meanwhile.
- **Latency** (first, on each fresh set-up): one-row transactions at ${FIXED_RATE} rows/s for ${o.warmup} + ${o.latencySeconds} s; \`seen\` (set at the
  destination by an ENABLE ALWAYS trigger) − \`created\` (set at the source), over the last ${o.latencySeconds} s.
- **Capture cost**: the replicator stopped, pgbench for ${o.captureSeconds} s against the source table with the
  system's capture, beside the same table in a plain database of the same cluster, alternated
  ${o.captureRounds} times; the extra time per transaction and client (${CLIENTS}/tps with − ${CLIENTS}/tps without).
  Logical replication's capture is the WAL the server writes anyway (\`wal_level=logical\` on both).
  The **floor** rows put, in the Hub-Broker column, the same measure of the least a trigger-based
  capture can do (one outbox row per change from one statement-level trigger, no version, no
  clock: bench/peers/floor.ts), measured right after Hub-Broker's, against Bucardo's capture.

${table}
`;
  return { text, tables: table };
}

function bucardoVersion(): string {
  const v = spawnSync('dpkg-query', ['-W', '-f=${Version}', 'bucardo'], { encoding: 'utf8' }).stdout?.trim();
  return v ? `bucardo ${v}` : 'bucardo';
}

function pgVersion(): string {
  return /(\d+(\.\d+)?)/.exec(spawnSync('pg_config', ['--version'], { encoding: 'utf8' }).stdout ?? '')?.[1] ?? '';
}

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (o.systems.includes('bucardo')) ensureBucardo();
  const started = timestamp();
  const load = loadLine();
  console.error('starting three PostgreSQL clusters…');
  const [source, dest, control] = [await startCluster('source'), await startCluster('dest'), await startCluster('control')];
  const plainDb = 'plain';
  const plainUrl = await source.createDatabase(plainDb);
  await source.query(TABLE_DDL, plainDb);
  const floorUrl = await source.createDatabase('floor');
  await source.query(FLOOR_DDL, 'floor');
  const clusters: Clusters = { source, dest, control, plainUrl, floorUrl };
  const dir = mkdtempSync(join(os.tmpdir(), 'bench-peers-'));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));

  const figures: Figures = new Map();
  for (let round = 1; round <= o.rounds; round++) {
    for (const dests of o.destinations) {
      for (const system of o.systems) {
        console.error(`round ${round}/${o.rounds}: ${TITLE[system]}, ${dests} destination(s)`);
        await measure(o, clusters, dir, figures, system, dests);
      }
    }
  }
  const { text, tables } = report(o, figures, started, load);
  console.log(tables);
  if (o.write) {
    await writeSection('Peers', text);
    console.log('wrote "## Peers" in docs/benchmarks.md');
  }
  await cleanupAll();
}

await runUnderBenchLock(main, cleanupAll);
