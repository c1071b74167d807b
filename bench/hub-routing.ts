/**
 * Routing benchmark: one tenant of N branches (hq and N-1 stores, a real socket each) through
 * one hub process. hq sends orders at a fixed rate, each for one store (`store_id`). With routes
 * (`orders` from hq to stores, filtered by `store_id = branch.store_id`) each order reaches one
 * store; with full mesh (no routes) it reaches all N-1. Per N: changes appended and delivered
 * per second, delivery latency, and the hub's CPU per appended change — which, with routes,
 * should grow with the receivers of a change (one), not with N.
 */
import pg from 'pg';
import WebSocket from 'ws';
import { decodeFrame, msgpackCodec, SUBPROTOCOL_MSGPACK, type Change, type HubToAgent } from '../protocol/index.js';
import { encodeHlc } from '../protocol/hlc.js';
import { createDatabase, freePort, HubProcess, randomJwtKeys, sleep } from './lib/hub-process.js';
import { mintTokens, seed } from './lib/hub-seed.js';
import { formatNumber, markdownTable } from './lib/report.js';

export const ROUTING = {
  sizes: [30, 100, 300],
  /** Orders per second hq sends (batches of 10 every 50 ms). */
  rate: Number(process.env.BENCH_ROUTING_RATE ?? 200),
  batch: 10,
  warmupSeconds: 3,
  seconds: Number(process.env.BENCH_ROUTING_SECONDS ?? 10),
} as const;

/** `routes, no repair`: the same routes with the hub's maintenance (compaction, route repair) held off, to show what route repair costs. */
export type RoutingMode = 'routes' | 'routes, no repair' | 'full mesh';

export interface RoutingResult {
  readonly mode: RoutingMode;
  readonly branches: number;
  readonly appendedRate: number;
  readonly deliveredRate: number;
  /** Deliveries expected per appended change (receivers). */
  readonly fanout: number;
  readonly p50: number;
  readonly p99: number;
  /** Hub CPU, fraction of one core. */
  readonly cpu: number;
  /** Hub CPU per appended change, µs. */
  readonly cpuPerChange: number;
}

const ROUTES = [
  { name: 'sales', tables: ['public.sale'], from: ['store'], to: ['hq'] },
  { name: 'orders', tables: ['public.order'], from: ['hq'], to: ['store'], filter: 'store_id = branch.store_id' },
];

/** Groups, attributes and routes straight into the hub database (and recorded as synced: no resync at connect). */
async function configure(databaseUrl: string, n: number, mode: RoutingMode): Promise<void> {
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    const routes = mode === 'full mesh' ? [] : ROUTES;
    await c.query(`UPDATE hub.tenants SET routes = $1 WHERE id = 'chain'`, [JSON.stringify(routes)]);
    await c.query(`UPDATE hub.branches SET groups = '{hq}', routing_synced = jsonb_build_object('routes', $1::jsonb, 'groups', '["hq"]'::jsonb, 'attributes', '{}'::jsonb) WHERE id = 'hq'`, [
      JSON.stringify(routes),
    ]);
    await c.query(
      `UPDATE hub.branches SET groups = '{store}', attributes = jsonb_build_object('store_id', substr(id, 2)),
              routing_synced = jsonb_build_object('routes', $1::jsonb, 'groups', '["store"]'::jsonb, 'attributes', jsonb_build_object('store_id', substr(id, 2)))
        WHERE id <> 'hq' AND tenant_id = 'chain'`,
      [JSON.stringify(routes)],
    );
    void n;
  } finally {
    await c.end();
  }
}

interface Socket {
  readonly ws: WebSocket;
  readonly hello: Promise<void>;
}

function connect(url: string, token: string, onDeliver: (entries: readonly [number, Change][]) => void): Socket {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/ws`, [SUBPROTOCOL_MSGPACK], { headers: { authorization: `Bearer ${token}` } });
  let greeted: () => void = () => undefined;
  const hello = new Promise<void>((resolve) => (greeted = resolve));
  ws.on('message', (data: Buffer) => {
    const d = decodeFrame(msgpackCodec, data);
    if (!d.ok) return;
    const f = d.value as HubToAgent;
    if (f.type === 'hello') greeted();
    else if (f.type === 'sync.deliver') {
      onDeliver(f.entries as [number, Change][]);
      const last = f.entries[f.entries.length - 1]?.[0] ?? 0;
      ws.send(msgpackCodec.encode({ type: 'sync.applied', id: `a${last}`, offset: last }));
    }
  });
  ws.on('error', () => undefined);
  return { ws, hello };
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

export async function runRouting(n: number, mode: RoutingMode): Promise<RoutingResult> {
  const db = await createDatabase(`routing_${mode === 'routes' ? 'r' : mode === 'full mesh' ? 'm' : 'n'}_${n}`);
  const jwtKeys = randomJwtKeys();
  const branches = await seed(db.url, ['chain'], n, (i) => (i === 0 ? 'hq' : `s${i}`));
  await configure(db.url, n, mode);
  const env: Record<string, string> = mode === 'routes, no repair' ? { HUB_MAINTENANCE_INTERVAL_MS: '3600000' } : {};
  const hub = await HubProcess.start({ databaseUrl: db.url, jwtKeys, port: await freePort(), label: `routing-${n}`, env });
  try {
    const tokens = await mintTokens(jwtKeys, branches, 3600);
    let measuring = false;
    let delivered = 0;
    const latencies: number[] = [];
    const sockets = branches.map((b, i) =>
      connect(hub.url, tokens[i] as string, (entries) => {
        if (!measuring) return;
        delivered += entries.length;
        const now = Date.now();
        for (const [, c] of entries) latencies.push(now - Number((c.row as { t: string }).t));
      }),
    );
    await Promise.all(sockets.map((s) => s.hello));
    const hq = sockets[0] as Socket;
    let seq = 0;
    let acked = 0;
    hq.ws.on('message', (data: Buffer) => {
      const d = decodeFrame(msgpackCodec, data);
      if (d.ok && (d.value as HubToAgent).type === 'sync.ack' && measuring) acked += ROUTING.batch;
    });
    const tickMs = (1000 * ROUTING.batch) / ROUTING.rate;
    const timer = setInterval(() => {
      const changes: Change[] = [];
      for (let k = 0; k < ROUTING.batch; k++) {
        seq++;
        const store = 1 + (seq % (n - 1));
        changes.push({
          table: 'public.order',
          op: 'insert',
          pk: { id: String(seq) },
          row: { id: String(seq), store_id: String(store), t: String(Date.now()) },
          hlc: encodeHlc({ wall: Date.now(), logical: 0 }),
          vv: { hq: seq },
          origin: 'hq',
          seq,
          tx: String(seq),
          tx_end: true,
        });
      }
      hq.ws.send(msgpackCodec.encode({ type: 'sync.batch', id: `b${seq}`, batch_id: `b${seq}`, changes }));
    }, tickMs);
    await sleep(ROUTING.warmupSeconds * 1000);
    measuring = true;
    const cpu0 = hub.cpuSeconds();
    const t0 = performance.now();
    await sleep(ROUTING.seconds * 1000);
    const cpu = hub.cpuSeconds() - cpu0;
    const secs = (performance.now() - t0) / 1000;
    measuring = false;
    clearInterval(timer);
    for (const s of sockets) s.ws.close();
    latencies.sort((a, b) => a - b);
    return {
      mode,
      branches: n,
      appendedRate: acked / secs,
      deliveredRate: delivered / secs,
      fanout: mode === 'full mesh' ? n - 1 : 1,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      cpu: cpu / secs,
      cpuPerChange: acked > 0 ? (cpu * 1e6) / acked : NaN,
    };
  } finally {
    await hub.stop().catch(() => hub.kill());
    await db.drop();
  }
}

export function routingTable(results: readonly RoutingResult[]): string {
  return markdownTable(
    ['branches', 'mode', 'receivers per change', 'appended/s', 'delivered/s', 'p50 ms', 'p99 ms', 'hub CPU', 'hub CPU per change'],
    results.map((r) => [
      r.branches,
      r.mode,
      r.fanout,
      formatNumber(Math.round(r.appendedRate)),
      formatNumber(Math.round(r.deliveredRate)),
      Math.round(r.p50),
      Math.round(r.p99),
      `${Math.round(r.cpu * 100)} %`,
      `${formatNumber(Math.round(r.cpuPerChange))} µs`,
    ]),
  );
}
