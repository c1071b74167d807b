/**
 * Relay benchmark: 1 sender and 4 receivers of one tenant, over real sockets, through one hub
 * process (a child of its own), once per codec, each codec with a fresh database and hub.
 *
 * - Latency: the sender offers a fixed 5,000 changes/s (a batch every 10 ms, whatever the acks:
 *   open loop, so a slow hub shows as latency rather than as a slower sender); each receiver
 *   measures every change from the moment the sender sent it to the moment its `sync.deliver`
 *   arrived.
 * - Saturation: the sender keeps 32 batches of 100 changes unacknowledged; changes/s acknowledged
 *   to the sender and delivered to each receiver over a 10-s window.
 */
import pg from 'pg';
import { cpuSeconds, createDatabase, CpuSampler, freePort, HubProcess, IpcWorker, randomJwtKeys, sleep, type MemoryReport } from './lib/hub-process.js';
import type { ReceiverStats, RelayCommand, SenderStats, Summary } from './lib/hub-relay-worker.js';
import { mintTokens, seed } from './lib/hub-seed.js';
import { formatNumber, markdownTable } from './lib/report.js';
import { profile, type HubRunOptions } from './hub-connections.js';

export const RELAY = {
  receivers: 4,
  fixedRate: 5000,
  tickMs: 10,
  warmupSeconds: 5,
  latencySeconds: Number(process.env.BENCH_LATENCY_SECONDS ?? 20),
  window: 32,
  batch: 100,
  rampSeconds: 3,
  saturationSeconds: Number(process.env.BENCH_SATURATION_SECONDS ?? 10),
} as const;

export interface RelayResult {
  readonly codec: 'json' | 'msgpack';
  readonly offeredRate: number;
  /** Per-change delivery latency at the fixed offered load, ms. */
  readonly latency: Summary;
  /** sync.batch → sync.ack at the fixed load, ms. */
  readonly ackLatency: Summary;
  /** Changes/s acknowledged to the sender at the fixed load (should equal the offer). */
  readonly fixedAckedRate: number;
  readonly fixedCpu: number;
  readonly ackedRate: number;
  /** Changes/s delivered to each receiver: slowest and mean. */
  readonly deliveredMin: number;
  readonly deliveredMean: number;
  readonly saturationAckLatency: Summary;
  readonly saturationCpu: number;
  readonly postgresCpu: number;
  readonly memory: MemoryReport;
  /** Every acknowledged change reached every receiver. */
  readonly complete: boolean;
  readonly drainSeconds: number;
  /** Log entries not yet folded into the compacted state when the saturation window ended. */
  readonly compactionBehind: number;
  /** From the end of the window until the background compaction caught up (null: not within 5 min). */
  readonly compactionCatchUpSeconds: number | null;
}

/** Entries of the relay tenant's log not yet compacted. */
async function compactionBehind(databaseUrl: string): Promise<number> {
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    const { rows } = await c.query<{ behind: string }>(
      'SELECT greatest(0, coalesce((SELECT max(pos) FROM tenant_relay.log), 0) - compacted_upto) AS behind FROM tenant_relay.meta',
    );
    return Number(rows[0]?.behind ?? 0);
  } finally {
    await c.end();
  }
}

const log = (s: string) => process.stderr.write(`[relay] ${s}\n`);

type Worker = IpcWorker<RelayCommand>;

async function receiverStats(w: Worker): Promise<ReceiverStats> {
  return w.request<ReceiverStats>({ cmd: 'stats' });
}

/** CPU seconds used so far by the PostgreSQL backends serving `database`. */
async function postgresCpu(databaseUrl: string): Promise<number> {
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    const { rows } = await c.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()');
    let total = 0;
    for (const r of rows) {
      try {
        total += cpuSeconds(r.pid);
      } catch {
        // gone meanwhile
      }
    }
    return total;
  } finally {
    await c.end();
  }
}

export async function runRelay(codec: 'json' | 'msgpack', options: HubRunOptions = {}): Promise<RelayResult> {
  const db = await createDatabase(`relay_${codec}`);
  const branches = ['sender', ...Array.from({ length: RELAY.receivers }, (_, i) => `receiver-${i + 1}`)];
  const seeded = await seed(db.url, ['relay'], branches.length, (i) => branches[i] as string);
  const jwtKeys = randomJwtKeys();
  const tokens = await mintTokens(jwtKeys, seeded, 3600);
  const port = await freePort();
  // The per-branch limit (default 500 frames/s) would cap small fixed-rate batches; the limiter still runs.
  const env = { HUB_BRANCH_RATE: '100000:100000', HUB_TENANT_RATE: '100000:100000' };
  const hub = await HubProcess.start({ databaseUrl: db.url, jwtKeys, port, env, label: `relay-${codec}`, ...profile(options) });
  const url = `ws://127.0.0.1:${port}/ws`;
  const sender: Worker = new IpcWorker<RelayCommand>(new URL('./lib/hub-relay-worker.ts', import.meta.url), ['sender']);
  const receivers: Worker = new IpcWorker<RelayCommand>(new URL('./lib/hub-relay-worker.ts', import.meta.url), ['receivers']);
  try {
    await receivers.request({ cmd: 'init', url, tokens: tokens.slice(1), branches: branches.slice(1), codec });
    await sender.request({ cmd: 'init', url, tokens: tokens.slice(0, 1), branches: branches.slice(0, 1), codec });

    // ---- fixed load: warm-up, then measure latency
    log(`${codec}: ${RELAY.fixedRate} changes/s, ${RELAY.warmupSeconds} s warm-up + ${RELAY.latencySeconds} s measured…`);
    await sender.request({ cmd: 'fixed', rate: RELAY.fixedRate, tickMs: RELAY.tickMs });
    await sleep(RELAY.warmupSeconds * 1000);
    await receivers.request({ cmd: 'record' });
    const s0 = await sender.request<SenderStats>({ cmd: 'stats' });
    const cpu0 = hub.cpuSeconds();
    await sleep(RELAY.latencySeconds * 1000);
    const s1 = await sender.request<SenderStats>({ cmd: 'stats' });
    const fixedCpu = (hub.cpuSeconds() - cpu0) / RELAY.latencySeconds;
    const r1 = await receiverStats(receivers);
    await sender.request({ cmd: 'stop' });
    await sleep(1000);

    // ---- saturation
    log(`${codec}: saturation, ${RELAY.window} batches of ${RELAY.batch} in flight, ${RELAY.rampSeconds} s ramp + ${RELAY.saturationSeconds} s measured…`);
    await sender.request({ cmd: 'saturate', window: RELAY.window, batch: RELAY.batch });
    await sleep(RELAY.rampSeconds * 1000);
    const a0 = await sender.request<SenderStats>({ cmd: 'stats' });
    const d0 = await receiverStats(receivers);
    const pg0 = await postgresCpu(db.url);
    const sampler = new CpuSampler(hub.pid, 1000).start();
    const t0 = performance.now();
    await sleep(RELAY.saturationSeconds * 1000);
    const a1 = await sender.request<SenderStats>({ cmd: 'stats' });
    const d1 = await receiverStats(receivers);
    const pg1 = await postgresCpu(db.url);
    sampler.stop();
    const secs = (performance.now() - t0) / 1000;
    const windowEnd = performance.now();
    const behind = await compactionBehind(db.url);
    const stopped = await sender.request<SenderStats>({ cmd: 'stop' });

    // ---- drain: every acknowledged change must reach every receiver
    const drainStart = performance.now();
    let last = await receiverStats(receivers);
    while (Math.min(...last.delivered) < stopped.acked && performance.now() - drainStart < 120_000) {
      await sleep(200);
      last = await receiverStats(receivers);
    }
    const drainSeconds = (performance.now() - drainStart) / 1000;
    const complete = last.delivered.every((n) => n === stopped.acked);
    if (!complete) log(`${codec}: receivers got ${last.delivered.join(', ')} of ${stopped.acked} acknowledged changes`);
    const memory = await hub.memory();
    // The background compaction (every 10 s, paced) catching up with what the window appended.
    let caughtUp: number | null = null;
    while (performance.now() - windowEnd < 300_000) {
      if ((await compactionBehind(db.url)) === 0) {
        caughtUp = (performance.now() - windowEnd) / 1000;
        break;
      }
      await sleep(500);
    }

    const rates = d1.delivered.map((n, i) => (n - (d0.delivered[i] as number)) / secs);
    return {
      codec,
      offeredRate: RELAY.fixedRate,
      latency: r1.latency,
      ackLatency: s1.ackLatency,
      fixedAckedRate: (s1.acked - s0.acked) / RELAY.latencySeconds,
      fixedCpu,
      ackedRate: (a1.acked - a0.acked) / secs,
      deliveredMin: Math.min(...rates),
      deliveredMean: rates.reduce((a, b) => a + b, 0) / rates.length,
      saturationAckLatency: a1.ackLatency,
      saturationCpu: sampler.total() / secs,
      postgresCpu: (pg1 - pg0) / secs,
      memory,
      complete,
      drainSeconds,
      compactionBehind: behind,
      compactionCatchUpSeconds: caughtUp,
    };
  } finally {
    await sender.stop();
    await receivers.stop();
    await hub.stop();
    await db.drop();
  }
}

const ms = (v: number) => `${v.toFixed(1)} ms`;
const pct = (cores: number) => `${(cores * 100).toFixed(0)} %`;

export function relayTable(results: readonly RelayResult[]): string {
  const goalRate = 20_000;
  const goalP99 = 50;
  const rows: string[][] = [
    ['**delivered to each receiver at saturation** (changes/s, slowest receiver)', ...results.map((r) => formatNumber(Math.round(r.deliveredMin))), `≥ ${formatNumber(goalRate)}`],
    ['acknowledged to the sender at saturation (changes/s)', ...results.map((r) => formatNumber(Math.round(r.ackedRate))), ''],
    ['entries pushed by the hub at saturation (4 receivers, /s)', ...results.map((r) => formatNumber(Math.round(r.deliveredMean * RELAY.receivers))), ''],
    ['batch → ack at saturation, p50 / p99', ...results.map((r) => `${ms(r.saturationAckLatency.p50)} / ${ms(r.saturationAckLatency.p99)}`), ''],
    ['hub CPU at saturation (of one core) / PostgreSQL backends', ...results.map((r) => `${pct(r.saturationCpu)} / ${pct(r.postgresCpu)}`), ''],
    [`**delivery latency at ${formatNumber(RELAY.fixedRate)} changes/s, p50**`, ...results.map((r) => ms(r.latency.p50)), ''],
    [`**delivery latency at ${formatNumber(RELAY.fixedRate)} changes/s, p99**`, ...results.map((r) => ms(r.latency.p99)), `< ${goalP99} ms`],
    ['delivery latency p90 / max', ...results.map((r) => `${ms(r.latency.p90)} / ${ms(r.latency.max)}`), ''],
    ['batch → ack at the fixed load, p50 / p99', ...results.map((r) => `${ms(r.ackLatency.p50)} / ${ms(r.ackLatency.p99)}`), ''],
    ['acknowledged at the fixed load (changes/s)', ...results.map((r) => formatNumber(Math.round(r.fixedAckedRate))), ''],
    ['hub CPU at the fixed load (of one core)', ...results.map((r) => pct(r.fixedCpu)), ''],
    ['hub RSS / heap used at the end', ...results.map((r) => `${(r.memory.rss / 2 ** 20).toFixed(0)} MB / ${(r.memory.heapUsed / 2 ** 20).toFixed(0)} MB`), ''],
    ['every acknowledged change reached every receiver', ...results.map((r) => (r.complete ? `yes (drained in ${r.drainSeconds.toFixed(1)} s)` : '**no**')), ''],
    [
      'log entries not yet compacted at the end of saturation → background compaction caught up',
      ...results.map((r) => `${formatNumber(r.compactionBehind)} → ${r.compactionCatchUpSeconds === null ? 'not within 5 min' : `after ${r.compactionCatchUpSeconds.toFixed(0)} s`}`),
      '',
    ],
  ];
  const verdict = (r: RelayResult) =>
    `${r.deliveredMin >= goalRate ? 'throughput met' : '**throughput missed**'}, ${r.latency.p99 < goalP99 ? 'p99 met' : '**p99 missed**'}`;
  rows.push(['goals', ...results.map(verdict), '']);
  return markdownTable(['figure', ...results.map((r) => r.codec), 'goal'], rows);
}
