/**
 * `npm run bench:sync [-- --seconds 10] [--warmup 3] [--capture-seconds 3] [--capture-rounds 5] [--no-capture] [--no-write] [--tpcb-seconds 40] [--tpcb-rounds 2] [--phase fixed-1|fixed-10|saturated-1|saturated-10|tpcb …]`:
 * branch-to-branch sync through the hub (issue 4), with real databases (one per branch), the hub
 * as a child process and one `hub-broker agent` child process per branch; then the capture
 * overhead (agent/bench-capture.ts), and the `tpcb` phase (bench/sync-tpcb.ts: pgbench TPC-B at
 * two branches at once against plain databases). Prints tables and replaces `## Sync` (and
 * `## Sync under local writers (TPC-B)`) in docs/benchmarks.md.
 *
 * Workloads run with pgbench (4 clients) at branch A; B and C apply. Latency per row: a column
 * `created` (clock_timestamp() when A inserts the row, just before its commit) against a column
 * `seen` that a BEFORE INSERT trigger at the destination sets to clock_timestamp() when the
 * apply engine writes the row (inside the apply transaction, just before its commit). Same
 * machine, same clock.
 *
 * Runs under `flock /tmp/hub-broker-bench.lock` (taken here unless HUB_BENCH_LOCKED=1), so
 * benchmarks on a shared machine never overlap. Every database it creates is dropped at the end.
 */
import type { ChildProcess } from 'node:child_process';
import { agentCommand, startAgentProcess } from './lib/agent-process.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { CAPTURE_DEFAULTS, runCaptureBench, type CaptureResult } from '../agent/bench-capture.js';
import { install } from '../agent/install.js';
import { HubStore, tenantSchemaName } from '../hub/store/index.js';
import { TEST_ARGON2 } from '../hub/testing/harness.js';
import { cleanupAll, cpuSeconds, createDatabase, freePort, HubProcess, onCleanup, PG_ADMIN_URL, randomJwtKeys, sleep, track } from './lib/hub-process.js';
import { machineLine, markdownTable, timestamp, writeSection } from './lib/report.js';
import { runUnderBenchLock } from './lib/bench-lock.js';
import { runTpcb, tpcbSection, tpcbTables, type TpcbResult } from './sync-tpcb.js';
import { pgbench as runPgbench } from '../test/support/pgbench.js';

const TENANT = 'bench';
const BRANCHES = ['a', 'b', 'c'] as const;
type BranchId = (typeof BRANCHES)[number];
const DESTINATIONS = ['b', 'c'] as const;
const CLIENTS = 4;
const FIXED_RATE = 1_000;

/** PostgreSQL logical replication and Bucardo on this machine, from issue 4. */
const REFERENCE = {
  logical: { rowsPerSecond: 5_750, p99Ms: 1 },
  bucardo: { rowsPerSecond: 2_430, p99Ms: 632 },
};
const GOALS = { p99Ms: 100, captureOverhead: 0.35 };

interface Options {
  seconds: number;
  warmup: number;
  captureSeconds: number;
  captureRounds: number;
  capture: boolean;
  write: boolean;
  tpcbSeconds: number;
  tpcbRounds: number;
  /** Sync phases to run (all by default). */
  phases: Set<PhaseName>;
}

const PHASES = ['fixed-1', 'fixed-10', 'saturated-1', 'saturated-10', 'tpcb'] as const;
type PhaseName = (typeof PHASES)[number];

function parseArgs(argv: readonly string[]): Options {
  const o: Options = { seconds: 10, warmup: 3, captureSeconds: 3, captureRounds: 5, capture: true, write: true, tpcbSeconds: 40, tpcbRounds: 2, phases: new Set() };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const num = (): number => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0) throw new Error(`${a} needs a positive number`);
      return v;
    };
    if (a === '--seconds') o.seconds = num();
    else if (a === '--warmup') o.warmup = num();
    else if (a === '--capture-seconds') o.captureSeconds = num();
    else if (a === '--capture-rounds') o.captureRounds = num();
    else if (a === '--no-capture') o.capture = false;
    else if (a === '--no-write') o.write = false;
    else if (a === '--tpcb-seconds') o.tpcbSeconds = num();
    else if (a === '--tpcb-rounds') o.tpcbRounds = Math.round(num());
    else if (a === '--phase' && (PHASES as readonly string[]).includes(argv[i + 1] ?? '')) o.phases.add(argv[++i] as PhaseName);
    else throw new Error(`unknown argument ${a}; use --seconds N, --warmup N, --capture-seconds N, --capture-rounds N, --no-capture, --no-write, --tpcb-seconds N, --tpcb-rounds N, --phase ${PHASES.join('|')}`);
  }
  if (o.phases.size === 0) for (const p of PHASES) o.phases.add(p);
  return o;
}

// ------------------------------------------------------------------ schema and workloads

const DDL = `
CREATE SEQUENCE public.bench_item_id;
CREATE TABLE public.bench_item (
  id bigint PRIMARY KEY DEFAULT nextval('public.bench_item_id'),
  client int NOT NULL,
  qty int NOT NULL,
  payload text NOT NULL,
  created timestamptz NOT NULL DEFAULT clock_timestamp(),
  seen timestamptz
);
-- At a destination: when the apply engine wrote the row (not part of what is compared).
CREATE FUNCTION public.bench_seen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.seen := clock_timestamp();
  RETURN NEW;
END $$;
CREATE TRIGGER bench_seen BEFORE INSERT ON public.bench_item
  FOR EACH ROW WHEN (current_setting('hubsync.applying', true) = 'on') EXECUTE FUNCTION public.bench_seen();`;

interface Workload {
  readonly name: string;
  readonly rowsPerTx: number;
  readonly script: string;
}

const PAYLOAD = `'pgbench-style insert, about fifty bytes of payload'`;
const ONE_ROW: Workload = {
  name: '1 row per transaction',
  rowsPerTx: 1,
  script: `INSERT INTO bench_item (client, qty, payload) VALUES (:client_id, 1, ${PAYLOAD});\n`,
};
const TEN_ROWS: Workload = {
  name: '10 rows per transaction',
  rowsPerTx: 10,
  script: `INSERT INTO bench_item (client, qty, payload) SELECT :client_id, g, ${PAYLOAD} FROM generate_series(1, 10) g;\n`,
};

// ------------------------------------------------------------------ set-up

interface BranchDb {
  readonly id: BranchId;
  readonly url: string;
  readonly pool: pg.Pool;
  readonly apiKey: string;
  agent?: ChildProcess;
  /** The agent's Prometheus endpoint. */
  metricsUrl?: string;
}

interface Setup {
  readonly hub: HubProcess;
  /** The hub database, to read when each change was appended to the tenant log. */
  readonly hubPool: pg.Pool;
  readonly branches: Record<BranchId, BranchDb>;
  readonly scriptDir: string;
}

async function setUp(): Promise<Setup> {
  const hubDb = await createDatabase('sync_hub');
  const hubPool = new pg.Pool({ connectionString: hubDb.url, max: 2, application_name: 'bench-sync' });
  hubPool.on('error', () => undefined);
  onCleanup(() => hubPool.end());
  const apiKeys = new Map<BranchId, string>();
  {
    // Real API keys (the agents exchange them for JWTs at /auth/token), hashed with cheap argon2
    // settings: the hash carries its parameters, so the hub verifies them as any other.
    const store = new HubStore(hubPool, { argon2: TEST_ARGON2, source: 'bench' });
    await store.migrate();
    await store.createTenant(TENANT);
    for (const id of BRANCHES) {
      const { apiKey } = await store.createBranch(TENANT, id);
      apiKeys.set(id, apiKey as string);
    }
  }
  const hub = await HubProcess.start({ databaseUrl: hubDb.url, jwtKeys: randomJwtKeys(), port: await freePort(), label: 'sync', env: { HUB_LOG_LEVEL: 'warn' } });

  const branches = {} as Record<BranchId, BranchDb>;
  for (const id of BRANCHES) {
    const db = await createDatabase(`sync_${id}`);
    const pool = new pg.Pool({ connectionString: db.url, max: 3, application_name: `bench-sync-${id}` });
    pool.on('error', () => undefined);
    onCleanup(() => pool.end());
    await pool.query(DDL);
    await install(pool, { tenantId: TENANT, branchId: id, tables: [{ name: 'public.bench_item' }] });
    branches[id] = { id, url: db.url, pool, apiKey: apiKeys.get(id) as string };
  }
  const command = await agentCommand();
  for (const id of BRANCHES) {
    const port = await freePort();
    branches[id].metricsUrl = `http://127.0.0.1:${port}/metrics`;
    branches[id].agent = startAgent(command, hub, branches[id], port);
  }

  const scriptDir = mkdtempSync(join(os.tmpdir(), 'bench-sync-'));
  onCleanup(() => rmSync(scriptDir, { recursive: true, force: true }));
  return { hub, hubPool, branches, scriptDir };
}

/** `hub-broker agent` for a branch, default settings, as a child process. */
function startAgent(command: readonly string[], hub: HubProcess, b: BranchDb, metricsPort: number): ChildProcess {
  const env = {
    HUB_URL: hub.url,
    TENANT_ID: TENANT,
    BRANCH_ID: b.id,
    API_KEY: b.apiKey,
    DATABASE_URL: b.url,
    AGENT_TABLES: 'public.bench_item',
    AGENT_METRICS_PORT: String(metricsPort),
    LOG_LEVEL: 'warn',
  };
  return startAgentProcess(command, env, b.id, () => stopping);
}

let stopping = false;

/** Inserts a row at A and waits until B and C have it: every agent is connected and live. */
async function waitConnected(s: Setup, timeoutMs = 60_000): Promise<void> {
  const { rows } = await s.branches.a.pool.query<{ id: string }>(`INSERT INTO bench_item (client, qty, payload) VALUES (0, 0, 'probe') RETURNING id`);
  const id = rows[0]?.id;
  const deadline = Date.now() + timeoutMs;
  for (const d of DESTINATIONS) {
    for (;;) {
      const r = await s.branches[d].pool.query(`SELECT 1 FROM bench_item WHERE id = $1`, [id]);
      if (r.rowCount === 1) break;
      if (Date.now() > deadline) throw new Error(`branch ${d} did not receive a row within ${timeoutMs} ms; hub log ${s.hub.logFile}`);
      await sleep(50);
    }
  }
}

// ------------------------------------------------------------------ one phase

interface ApplyCounters {
  readonly seconds: number;
  readonly count: number;
  readonly fallbacks: number;
}

/** The agent's apply-time histogram (sum and count) and chunks halved to isolate a refused change. */
async function applyCounters(b: BranchDb): Promise<ApplyCounters> {
  const text = await fetch(b.metricsUrl as string).then((r) => r.text());
  const value = (name: string): number => {
    const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
    return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
  };
  return {
    seconds: value('hub_broker_agent_apply_seconds_sum'),
    count: value('hub_broker_agent_apply_seconds_count'),
    fallbacks: value('hub_broker_agent_apply_fallbacks_total'),
  };
}

interface DestinationResult {
  readonly branch: BranchId;
  /** Rows applied at the destination during the measured window, per second. */
  readonly deliveredPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Rows of the phase not there yet when the source stopped. */
  readonly backlogAtEnd: number;
  /** From the source's last commit to this destination's last apply. */
  readonly drainMs: number;
  /** Medians of the two legs: A's insert → appended to the hub's log; appended → applied here. */
  readonly toHubP50Ms: number;
  readonly fromHubP50Ms: number;
  readonly toHubP99Ms: number;
  readonly fromHubP99Ms: number;
  /** Rows of the phase per apply transaction at this destination (rows ÷ distinct xmin). */
  readonly rowsPerApply: number;
  /** Mean time of one `sync.deliver` apply, from the agent's metrics, over the phase. */
  readonly applyMs: number;
  /** Apply chunks halved to isolate a change the database refused, during the phase. */
  readonly fallbacks: number;
}

interface PhaseResult {
  readonly workload: Workload;
  /** Offered rows/s, or undefined for as fast as the 4 clients go. */
  readonly offered: number | undefined;
  readonly sourcePerSecond: number;
  readonly windowSeconds: number;
  readonly rows: number;
  readonly destinations: readonly DestinationResult[];
  /** Changes per append transaction at the hub (changes ÷ distinct appended_at). */
  readonly changesPerAppend: number;
  /** Writes of A's wake flag per second (agent A going to sleep or waking; while it sleeps, every captured write NOTIFYs). */
  readonly wakeFlagWritesPerSecond: number;
  /** CPU used during the phase (source start to last apply), in cores. */
  readonly cpu: Readonly<Record<string, number>>;
}

async function pgbench(url: string, script: string, seconds: number, txRate: number | undefined): Promise<string> {
  return (await runPgbench(url, { clients: CLIENTS, seconds, ...(txRate === undefined ? {} : { rate: txRate }), script: { file: script }, track })).output;
}

async function runPhase(s: Setup, o: Options, workload: Workload, offered: number | undefined): Promise<PhaseResult> {
  const a = s.branches.a.pool;
  const base = Number((await a.query<{ n: string }>(`SELECT coalesce(max(id), 0)::text AS n FROM bench_item`)).rows[0]?.n ?? 0);
  const script = join(s.scriptDir, `${workload.rowsPerTx}.sql`);
  writeFileSync(script, workload.script);
  const pids: Record<string, number> = { hub: s.hub.pid };
  for (const id of BRANCHES) pids[`agent ${id.toUpperCase()}`] = s.branches[id].agent?.pid as number;
  const wakeWrites = async (): Promise<number> => {
    await a.query('SELECT pg_stat_clear_snapshot()');
    const r = await a.query<{ n: string }>(`SELECT n_tup_upd::text AS n FROM pg_stat_user_tables WHERE relid = 'hubsync.wake'::regclass`);
    return Number(r.rows[0]?.n ?? 0);
  };
  const wake0 = await wakeWrites();
  const apply0 = new Map<BranchId, ApplyCounters>();
  for (const d of DESTINATIONS) apply0.set(d, await applyCounters(s.branches[d]));
  const cpu0 = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid)]));
  const t0 = performance.now();
  const label = `${workload.name}, ${offered === undefined ? 'saturated' : `${offered} rows/s offered`}`;
  console.error(`${label}: ${o.warmup + o.seconds} s of pgbench…`);
  await pgbench(s.branches.a.url, script, o.warmup + o.seconds, offered === undefined ? undefined : offered / workload.rowsPerTx);

  // The phase's rows at A: the window is the last `seconds` of the source's commits.
  const src = (
    await a.query<{ total: string; first: Date; last: Date; w0: Date }>(
      `SELECT count(*)::text AS total, min(created) AS first, max(created) AS last, max(created) - make_interval(secs => $2) AS w0 FROM bench_item WHERE id > $1`,
      [base, o.seconds],
    )
  ).rows[0];
  if (!src || Number(src.total) === 0) throw new Error('pgbench wrote no rows');
  const total = Number(src.total);
  const inWindow = Number(
    (await a.query<{ n: string }>(`SELECT count(*)::text AS n FROM bench_item WHERE id > $1 AND created > $2 AND created <= $3`, [base, src.w0, src.last])).rows[0]?.n ?? 0,
  );

  // Backlog when the source stopped, then wait until every destination has every row.
  const count = async (d: BranchId) => Number((await s.branches[d].pool.query<{ n: string }>(`SELECT count(*)::text AS n FROM bench_item WHERE id > $1`, [base])).rows[0]?.n ?? 0);
  const backlog = new Map<BranchId, number>();
  for (const d of DESTINATIONS) backlog.set(d, total - (await count(d)));
  const deadline = Date.now() + 120_000;
  for (const d of DESTINATIONS) {
    while ((await count(d)) < total) {
      if (Date.now() > deadline) throw new Error(`branch ${d} did not catch up within 120 s after the source stopped`);
      await sleep(100);
    }
  }
  const elapsed = (performance.now() - t0) / 1000;
  const wakeFlagWritesPerSecond = ((await wakeWrites()) - wake0) / elapsed;
  const cpu = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, (cpuSeconds(pid) - (cpu0[k] as number)) / elapsed]));

  // When the hub appended each change (the append transaction's start), by row id.
  const appended = new Map<string, number>();
  const appends = new Set<string>();
  const log = await s.hubPool.query<{ id: string; at: string }>(
    `SELECT change->'pk'->>'id' AS id, (extract(epoch FROM appended_at) * 1000)::text AS at FROM ${tenantSchemaName(TENANT)}.log WHERE (change->'pk'->>'id')::bigint > $1`,
    [base],
  );
  for (const r of log.rows) {
    appended.set(r.id, Number(r.at));
    appends.add(r.at);
  }

  const destinations: DestinationResult[] = [];
  for (const d of DESTINATIONS) {
    const before = apply0.get(d) as ApplyCounters;
    const after = await applyCounters(s.branches[d]);
    const legs = await s.branches[d].pool.query<{ id: string; created: string; seen: string }>(
      `SELECT id::text AS id, (extract(epoch FROM created) * 1000)::text AS created, (extract(epoch FROM seen) * 1000)::text AS seen
         FROM bench_item WHERE id > $1 AND created > $2 AND created <= $3`,
      [base, src.w0, src.last],
    );
    const toHub: number[] = [];
    const fromHub: number[] = [];
    for (const r of legs.rows) {
      const at = appended.get(r.id);
      if (at === undefined) continue;
      toHub.push(at - Number(r.created));
      fromHub.push(Number(r.seen) - at);
    }
    const r = (
      await s.branches[d].pool.query<{ delivered: string; p50: number; p99: number; max: number; drain: number; rows: string; txs: string }>(
        `SELECT count(*) FILTER (WHERE seen > $2 AND seen <= $3)::text AS delivered,
                count(*)::text AS rows, count(DISTINCT x)::text AS txs,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY lat) FILTER (WHERE created > $2 AND created <= $3) AS p50,
                percentile_cont(0.99) WITHIN GROUP (ORDER BY lat) FILTER (WHERE created > $2 AND created <= $3) AS p99,
                max(lat) FILTER (WHERE created > $2 AND created <= $3) AS max,
                extract(epoch FROM max(seen) - $3) * 1000 AS drain
           FROM (SELECT created, seen, extract(epoch FROM seen - created) * 1000 AS lat, xmin::text AS x FROM bench_item WHERE id > $1) t`,
        [base, src.w0, src.last],
      )
    ).rows[0];
    if (!r) throw new Error('no result');
    destinations.push({
      branch: d,
      deliveredPerSecond: Number(r.delivered) / o.seconds,
      p50Ms: Number(r.p50),
      p99Ms: Number(r.p99),
      maxMs: Number(r.max),
      backlogAtEnd: backlog.get(d) ?? 0,
      drainMs: Math.max(0, Number(r.drain)),
      toHubP50Ms: quantile(toHub, 0.5),
      toHubP99Ms: quantile(toHub, 0.99),
      fromHubP50Ms: quantile(fromHub, 0.5),
      fromHubP99Ms: quantile(fromHub, 0.99),
      rowsPerApply: Number(r.rows) / Math.max(1, Number(r.txs)),
      applyMs: ((after.seconds - before.seconds) * 1000) / Math.max(1, after.count - before.count),
      fallbacks: after.fallbacks - before.fallbacks,
    });
  }
  const result: PhaseResult = { workload, offered, sourcePerSecond: inWindow / o.seconds, windowSeconds: o.seconds, rows: total, destinations, changesPerAppend: log.rows.length / Math.max(1, appends.size), wakeFlagWritesPerSecond, cpu };
  console.error(
    `  source ${result.sourcePerSecond.toFixed(0)} rows/s, ${result.changesPerAppend.toFixed(1)} changes per hub append, ${wakeFlagWritesPerSecond.toFixed(0)} wake-flag writes/s at A; ` +
      destinations
        .map(
          (d) =>
            `${d.branch.toUpperCase()} ${d.deliveredPerSecond.toFixed(0)} rows/s p50 ${d.p50Ms.toFixed(1)} ms p99 ${d.p99Ms.toFixed(1)} ms max ${d.maxMs.toFixed(0)} ms ` +
            `(to hub p50 ${d.toHubP50Ms.toFixed(1)} p99 ${d.toHubP99Ms.toFixed(1)}, from hub p50 ${d.fromHubP50Ms.toFixed(1)} p99 ${d.fromHubP99Ms.toFixed(1)}) backlog ${d.backlogAtEnd} drain ${d.drainMs.toFixed(0)} ms, ${d.rowsPerApply.toFixed(1)} rows per apply of ${d.applyMs.toFixed(1)} ms, ${d.fallbacks} fallbacks`,
        )
        .join('; '),
  );
  return result;
}

/** Nearest-rank quantile; NaN for no values. */
function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return Number.NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}

// ------------------------------------------------------------------ report

const ms = (x: number): string => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const rate = (x: number): number => Math.round(x);

const pair = (a: number, b: number): string => `${ms(a)} / ${ms(b)}`;

function latencyTable(results: readonly PhaseResult[]): string {
  return markdownTable(
    ['Workload', 'Source rows/s', 'Destination', 'Delivered rows/s', 'p50 ms', 'p99 ms', 'max ms', 'A → hub log p50 / p99 ms', 'hub log → applied p50 / p99 ms', 'Rows per apply transaction', 'ms per apply transaction'],
    results.flatMap((r) =>
      r.destinations.map((d) => [
        r.workload.name,
        rate(r.sourcePerSecond),
        d.branch.toUpperCase(),
        rate(d.deliveredPerSecond),
        ms(d.p50Ms),
        ms(d.p99Ms),
        ms(d.maxMs),
        pair(d.toHubP50Ms, d.toHubP99Ms),
        pair(d.fromHubP50Ms, d.fromHubP99Ms),
        d.rowsPerApply.toFixed(1),
        d.applyMs.toFixed(1),
      ]),
    ),
  );
}

function saturationTable(results: readonly PhaseResult[]): string {
  return markdownTable(
    ['Workload', 'Source rows/s', 'Destination', 'Delivered rows/s', 'Delivered / source', 'Behind when the source stopped (rows)', 'Caught up after (s)', 'p50 ms', 'p99 ms', 'Rows per apply transaction', 'ms per apply transaction'],
    results.flatMap((r) =>
      r.destinations.map((d) => [
        r.workload.name,
        rate(r.sourcePerSecond),
        d.branch.toUpperCase(),
        rate(d.deliveredPerSecond),
        `${((d.deliveredPerSecond / r.sourcePerSecond) * 100).toFixed(0)} %`,
        d.backlogAtEnd,
        (d.drainMs / 1000).toFixed(1),
        ms(d.p50Ms),
        ms(d.p99Ms),
        d.rowsPerApply.toFixed(1),
        d.applyMs.toFixed(1),
      ]),
    ),
  );
}

function cpuTable(results: readonly PhaseResult[]): string {
  const names = Object.keys(results[0]?.cpu ?? {});
  return markdownTable(
    ['Phase', ...names.map((n) => `${n} (cores)`), 'Changes per hub append', 'Wake-flag writes/s at A'],
    results.map((r) => [
      `${r.workload.name}, ${r.offered === undefined ? 'saturated' : `${r.offered.toLocaleString('en-US')} rows/s`}`,
      ...names.map((n) => (r.cpu[n] ?? 0).toFixed(2)),
      r.changesPerAppend.toFixed(1),
      rate(r.wakeFlagWritesPerSecond),
    ]),
  );
}

function captureTable(c: CaptureResult): string {
  const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
  return markdownTable(
    ['Workload', 'Without triggers (tps)', 'With triggers (tps)', 'Overhead', 'Overhead, lowest – highest round', 'With NOTIFY on every write (tps)', 'Overhead', 'Trigger time per row (µs)'],
    (['insert', 'update'] as const).map((w) => {
      const x = c.workloads[w];
      const cpu = `${(x.cpuPerRow.synced - x.cpuPerRow.plain).toFixed(1)} (${x.cpuPerRow.plain.toFixed(1)} → ${x.cpuPerRow.synced.toFixed(1)})`;
      return [`single-row ${w}`, rate(x.plain), rate(x.synced), pct(x.overhead), `${pct(x.overheadRange[0])} – ${pct(x.overheadRange[1])}`, rate(x.notify), pct(x.notifyOverhead), cpu];
    }),
  );
}

function goalsTable(fixed: readonly PhaseResult[], saturated: readonly PhaseResult[], capture: CaptureResult | undefined): string {
  const rows: (string | number)[][] = [];
  const oneRowSat = saturated.find((r) => r.workload.rowsPerTx === 1);
  if (oneRowSat) {
    const worst = Math.min(...oneRowSat.destinations.map((d) => d.deliveredPerSecond));
    const ratio = worst / oneRowSat.sourcePerSecond;
    rows.push([
      'Keep up with the source, 1-row transactions, 4 clients unthrottled',
      `source ${rate(oneRowSat.sourcePerSecond).toLocaleString('en-US')} rows/s, slowest destination ${rate(worst).toLocaleString('en-US')} rows/s (${(ratio * 100).toFixed(0)} %)`,
      `logical replication ~${REFERENCE.logical.rowsPerSecond.toLocaleString('en-US')} rows/s (keeps up); Bucardo ~${REFERENCE.bucardo.rowsPerSecond.toLocaleString('en-US')} rows/s`,
      ratio >= 0.98 ? 'met' : 'missed',
    ]);
  }
  for (const r of fixed) {
    const p99 = Math.max(...r.destinations.map((d) => d.p99Ms));
    rows.push([
      `p99 < ${GOALS.p99Ms} ms at ${FIXED_RATE.toLocaleString('en-US')} rows/s, ${r.workload.name}`,
      `${ms(p99)} ms (worse destination)`,
      r.workload.rowsPerTx === 1 ? `logical replication ${REFERENCE.logical.p99Ms} ms; Bucardo ${REFERENCE.bucardo.p99Ms} ms` : '',
      p99 < GOALS.p99Ms ? 'met' : 'missed',
    ]);
  }
  if (capture) {
    for (const w of ['insert', 'update'] as const) {
      const x = capture.workloads[w].overhead;
      rows.push([`Capture overhead ≤ ${GOALS.captureOverhead * 100} %, single-row ${w}`, `${(x * 100).toFixed(1)} %`, 'Bucardo 45 %', x <= GOALS.captureOverhead ? 'met' : 'missed']);
    }
  }
  return markdownTable(['Goal (issue 4)', 'Measured', 'For scale', 'Result'], rows);
}

/** What the figures say about where the time goes, from the figures themselves. */
function reading(fixed: readonly PhaseResult[], saturated: readonly PhaseResult[]): string {
  const notes: string[] = [];
  for (const r of [...fixed, ...saturated]) {
    const phase = `${r.workload.name}, ${r.offered === undefined ? 'saturated' : `${r.offered.toLocaleString('en-US')} rows/s`}`;
    const worst = r.destinations.reduce((a, b) => (b.deliveredPerSecond < a.deliveredPerSecond ? b : a));
    const capacity = (worst.rowsPerApply / worst.applyMs) * 1000;
    const behind = worst.deliveredPerSecond < 0.98 * r.sourcePerSecond;
    const legs = `A → hub log p50 ${ms(worst.toHubP50Ms)} ms, hub log → applied p50 ${ms(worst.fromHubP50Ms)} ms`;
    notes.push(
      `- ${phase}: ${legs}; destination ${worst.branch.toUpperCase()} applied ${worst.rowsPerApply.toFixed(1)} rows per apply transaction in ${worst.applyMs.toFixed(1)} ms ` +
        `(at most ~${rate(capacity).toLocaleString('en-US')} rows/s while applying back to back)` +
        (behind
          ? `, below the source's ${rate(r.sourcePerSecond).toLocaleString('en-US')} rows/s: it fell behind during the phase, so its latency grew with the phase's length (not a steady state).`
          : ', and kept up with the source.') +
        (r.destinations.some((d) => d.fallbacks > 0) ? ` Some apply chunks were halved to isolate a refused change (${r.destinations.map((d) => `${d.branch.toUpperCase()} ${d.fallbacks}`).join(', ')}).` : ''),
    );
  }
  return `Where the time goes (slower destination per phase):

${notes.join('\n')}

In live mode the hub pushes each appended batch as a \`sync.deliver\` of its own (until
20,000 entries are unapplied); the agent applies the deliveries that queued up while it was
applying one together (up to 2,000 entries), in transactions of at most 1,000 distinct rows, so
a destination that falls behind catches up in larger transactions: its rate is rows per apply
transaction ÷ time per apply transaction. The three branch databases and the
hub's share one PostgreSQL server, and everything (PostgreSQL, pgbench, the hub, three agents)
shares the machine's ${os.availableParallelism()} cores.`;
}

function load(): string {
  return (os.loadavg()[0] ?? 0).toFixed(2);
}

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const argText = process.argv.slice(2).join(' ');
  const command = `npm run bench:sync${argText ? ` -- ${argText}` : ''}`;
  const started = new Date();
  const loadBefore = load();
  const fixed: PhaseResult[] = [];
  const saturated: PhaseResult[] = [];
  let tpcb: TpcbResult | undefined;
  if (o.phases.has('tpcb')) {
    try {
      tpcb = await runTpcb({ seconds: o.tpcbSeconds, rounds: o.tpcbRounds });
    } finally {
      await cleanupAll();
    }
    const t = tpcbTables(tpcb);
    console.log(`\nSync under local writers (TPC-B)\n\n${t.goals}\n\n${t.rounds}\n`);
    if (o.write) {
      await writeSection('Sync under local writers (TPC-B)', tpcbSection(tpcb, command, timestamp(started), machineLine()));
      console.log('wrote "## Sync under local writers (TPC-B)" in docs/benchmarks.md');
    }
    // Only the TPC-B phase asked for: the rest (and its section) stays as it was.
    if (o.phases.size === 1) return;
  }
  const s = await setUp();
  try {
    await waitConnected(s);
    for (const w of [ONE_ROW, TEN_ROWS]) if (o.phases.has(`fixed-${w.rowsPerTx}` as PhaseName)) fixed.push(await runPhase(s, o, w, FIXED_RATE));
    for (const w of [ONE_ROW, TEN_ROWS]) if (o.phases.has(`saturated-${w.rowsPerTx}` as PhaseName)) saturated.push(await runPhase(s, o, w, undefined));
  } finally {
    stopping = true;
    await cleanupAll();
  }
  const loadAfterSync = load();

  let capture: CaptureResult | undefined;
  if (o.capture) {
    const co = { ...CAPTURE_DEFAULTS, adminUrl: PG_ADMIN_URL, seconds: o.captureSeconds, rounds: o.captureRounds };
    console.error(`capture overhead: ${co.rounds} rounds of ${co.seconds} s runs…`);
    capture = await runCaptureBench(co);
  }
  const loadEnd = load();

  const tables = {
    fixed: latencyTable(fixed),
    saturated: saturationTable(saturated),
    cpu: cpuTable([...fixed, ...saturated]),
    capture: capture ? captureTable(capture) : undefined,
    goals: goalsTable(fixed, saturated, capture),
  };
  console.log(`\nFixed load (${FIXED_RATE} rows/s offered)\n\n${tables.fixed}\n`);
  console.log(`Saturation\n\n${tables.saturated}\n`);
  console.log(`CPU\n\n${tables.cpu}\n`);
  if (tables.capture) console.log(`Capture overhead\n\n${tables.capture}\n`);
  console.log(`Goals\n\n${tables.goals}\n`);

  const busy = Number(loadBefore) > 0.5 ? ' The machine was shared with other work during the run (load before it started): figures may be low.' : '';
  const body = `Command: \`${command}\` (bench/sync.ts; capture overhead by agent/bench-capture.ts), run ${timestamp(started)} on ${machineLine()}.
1-minute load average ${loadBefore} before, ${loadAfterSync} after the sync phases, ${loadEnd} at the end, on ${os.availableParallelism()} cores.${busy}

Three branches, each with its own PostgreSQL database (same server) and its own agent
(\`hub-broker agent\` child process compiled like the hub, default settings: NOTIFY wake-up, batches of 100, 4 in
flight, MessagePack), one hub child process (default settings, log level warn), all on this
machine with pgbench and PostgreSQL. pgbench (${CLIENTS} clients, 2 threads) writes at branch A; B and C
apply. Table \`bench_item\` (bigint key from a sequence, two ints, ~50 bytes of text, two
timestamps). Per phase ${o.warmup} s warm-up then ${o.seconds} s measured (the last ${o.seconds} s of the source's commits).

- **Latency**: per row, \`created\` (clock_timestamp() as A inserts it, just before A's commit)
  against \`seen\`, set by a BEFORE INSERT trigger at the destination when the apply engine
  writes the row (inside the apply transaction, a few ms at most before its commit); same
  machine, same clock. Percentiles over the rows A committed in the measured window.
  Split in two legs by when the hub appended each change to the tenant log (\`appended_at\`,
  the start of the append transaction): **A → hub log** (capture, agent A's outbox read, send,
  hub append) and **hub log → applied** (append commit, delivery, agent's apply).
- **Delivered rows/s**: rows applied at the destination during the measured window.
- **Rows per apply transaction**: the phase's rows at the destination ÷ distinct \`xmin\`
  (one apply transaction per \`sync.deliver\`, or per group of deliveries that queued up);
  **changes per hub append**: the same for the hub's append transactions (group commit).
  **ms per apply transaction**: mean time the agent spent in one apply transaction (its
  \`hub_broker_agent_apply_seconds\` histogram).
- **Fixed load**: pgbench \`-R\` (Poisson arrivals) at ${FIXED_RATE.toLocaleString('en-US')} rows/s, i.e. ${FIXED_RATE.toLocaleString('en-US')} one-row or ${(FIXED_RATE / 10).toLocaleString('en-US')} ten-row transactions/s.
- **Saturation**: the ${CLIENTS} clients unthrottled; whether the destinations keep up with the source.

For scale (issue 4, same workload on this machine): PostgreSQL logical replication keeps up
with the source (~${REFERENCE.logical.rowsPerSecond.toLocaleString('en-US')} rows/s) with p99 ${REFERENCE.logical.p99Ms} ms at 1,000 rows/s; Bucardo reaches ~${REFERENCE.bucardo.rowsPerSecond.toLocaleString('en-US')} rows/s
with p99 ${REFERENCE.bucardo.p99Ms} ms; Bucardo's triggers cost 45 % of the insert/update rate.

### Goals

${tables.goals}

${reading(fixed, saturated)}

### Fixed load, ${FIXED_RATE.toLocaleString('en-US')} rows/s

${tables.fixed}

### Saturation

${tables.saturated}

### CPU per process

Average over each phase (source start to the last row applied), from /proc; PostgreSQL and
pgbench use the rest of the machine. Wake-flag writes at A: how often agent A went to sleep
(outbox empty) or woke up; while it sleeps every captured write NOTIFYs, which serialises
commits, so a high figure would mean NOTIFY limits the source.

${tables.cpu}
${
  tables.capture && capture
    ? `
### Capture overhead

pgbench ${capture.options.clients} clients, single-row transactions on a table of ${capture.options.rows.toLocaleString('en-US')} rows, with and without the
capture triggers, same database, same run: ${capture.options.rounds} rounds of ${capture.options.seconds} s per variant, measured back to back in
alternating order; tps are medians, overhead is the median over rounds of 1 − with/without
(the spread between rounds shows how much other work on the machine moves it).
"With NOTIFY on every write" is the worst case (the agent asleep on every write). "Trigger
time per row" is the server's time per written row with the trigger minus without it, from
20,000 single-row writes in one \`DO\` block (no commits, no client; median of 3): WAL flushes
and other work move it far less than tps, so it tracks the trigger's own cost.

${tables.capture}
`
    : ''
}`;
  if (o.write) {
    await writeSection('Sync', body);
    console.log('wrote "## Sync" in docs/benchmarks.md');
  }
}

await runUnderBenchLock(main, async () => {
  stopping = true;
  await cleanupAll();
});
