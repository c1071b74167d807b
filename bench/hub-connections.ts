/**
 * Connections benchmark: 20,000 authenticated idle branch connections to one hub process (its own
 * child process); hub memory per connection (RSS and heap after a full GC, minus the same hub
 * warmed up with none) and the hub's CPU while they sit idle for 30 s (a heartbeat round included).
 * The same fleet then serves the reconnect storm (bench/hub-reconnect.ts).
 */
import { join } from 'node:path';
import { Fleet } from './lib/hub-fleet.js';
import { createDatabase, CpuSampler, freePort, HubProcess, openFiles, openFilesLimit, randomJwtKeys, sleep, type MemoryReport } from './lib/hub-process.js';
import { mintTokens, seed } from './lib/hub-seed.js';
import { formatNumber, markdownTable } from './lib/report.js';

export const REQUESTED_CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 20_000);
const TENANTS = Number(process.env.BENCH_TENANTS ?? 100);
const WORKERS = 4;
const WARMUP_CONNECTIONS = 200;
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 30);
/** Open files the hub needs besides its sockets: its own baseline, the PostgreSQL pool, some margin. */
const FD_MARGIN = 60;

export interface FleetSetup {
  readonly hub: HubProcess;
  readonly fleet: Fleet;
  /** Connections this run opens (the request, or fewer when the open-files limit forbids it). */
  readonly connections: number;
  readonly fdLimit: number;
  readonly tenants: number;
  readonly databaseUrl: string;
  readonly jwtKeys: string;
  readonly port: number;
  readonly hubEnv: Record<string, string>;
  readonly profileDir: string | undefined;
  /** Time to open every connection from scratch, ms, and the hub's CPU time meanwhile. */
  readonly connectMs: number;
  readonly connectCpuSeconds: number;
  readonly base: MemoryReport;
}

export interface HubRunOptions {
  /** Run the hub child under `--cpu-prof`, profiles into this directory. */
  readonly cpuProfDir?: string;
  readonly heapProfDir?: string;
  /** Profile the hub during the idle phase only, into this directory. */
  readonly idleProfDir?: string;
}

const log = (s: string) => process.stderr.write(`[connections] ${s}\n`);

/** Database, branches, tokens, a hub, a warm-up, then every connection open and greeted. */
export async function prepareFleet(options: HubRunOptions = {}): Promise<FleetSetup> {
  const limit = openFilesLimit();
  const db = await createDatabase('conn');
  const tenantIds = Array.from({ length: TENANTS }, (_, i) => `bench-${String(i).padStart(3, '0')}`);
  const perTenant = Math.ceil(REQUESTED_CONNECTIONS / TENANTS);
  log(`seeding ${TENANTS} tenants × ${perTenant} branches (SQL, no argon2)…`);
  const branches = (await seed(db.url, tenantIds, perTenant)).slice(0, REQUESTED_CONNECTIONS);
  const jwtKeys = randomJwtKeys();
  const tokens = await mintTokens(jwtKeys, branches, 4 * 3600);
  const port = await freePort();
  const hubEnv = { HUB_MAX_CONNECTIONS: String(REQUESTED_CONNECTIONS + 1000) };
  const hub = await HubProcess.start({ databaseUrl: db.url, jwtKeys, port, env: hubEnv, label: 'conn', ...profile(options) });
  // The hub inherits this process's open-files limit, which only a privileged process can raise.
  const connections = Math.min(REQUESTED_CONNECTIONS, limit.hard - openFiles(hub.pid) - FD_MARGIN);
  if (connections < REQUESTED_CONNECTIONS) {
    log(`open-files hard limit is ${limit.hard}: the hub can hold ${connections} connections, not ${REQUESTED_CONNECTIONS}`);
  }
  const fleet = await Fleet.start(`ws://127.0.0.1:${port}/ws`, tokens.slice(0, connections), WORKERS);

  log(`warming up the hub with ${WARMUP_CONNECTIONS} connections…`);
  await fleet.connect(WARMUP_CONNECTIONS);
  await fleet.waitAllGreeted(60_000);
  await fleet.disconnect(WARMUP_CONNECTIONS);
  await sleep(3000);
  const base = await hub.memory();

  log(`opening ${connections} connections…`);
  const started = performance.now();
  const cpuBefore = hub.cpuSeconds();
  await fleet.connect(connections);
  await fleet.waitAllGreeted(300_000);
  const connectMs = performance.now() - started;
  const connectCpuSeconds = hub.cpuSeconds() - cpuBefore;
  log(`${connections} connections open in ${(connectMs / 1000).toFixed(1)} s`);
  return {
    hub,
    fleet,
    connections,
    fdLimit: limit.hard,
    tenants: TENANTS,
    databaseUrl: db.url,
    jwtKeys,
    port,
    hubEnv,
    profileDir: options.cpuProfDir,
    connectMs,
    connectCpuSeconds,
    base,
  };
}

export function profile(options: HubRunOptions): { cpuProfDir?: string; heapProfDir?: string } {
  return {
    ...(options.cpuProfDir ? { cpuProfDir: options.cpuProfDir } : {}),
    ...(options.heapProfDir ? { heapProfDir: options.heapProfDir } : {}),
  };
}

export interface ConnectionsResult {
  readonly connections: number;
  readonly requested: number;
  readonly fdLimit: number;
  readonly tenants: number;
  readonly connectSeconds: number;
  readonly connectCpuSeconds: number;
  readonly base: MemoryReport;
  readonly loaded: MemoryReport;
  readonly rssPerConnection: number;
  readonly heapPerConnection: number;
  /** external + arrayBuffers (socket buffers live there). */
  readonly externalPerConnection: number;
  readonly idleSeconds: number;
  /** Hub CPU while idle, in % of one core. */
  readonly idleCpuPercent: number;
  readonly droppedWhileIdle: number;
}

export async function runConnections(setup: FleetSetup, options: HubRunOptions = {}): Promise<ConnectionsResult> {
  const { hub, fleet, connections } = setup;
  // Let connect-time work (cursor reads, last-seen writes) finish before measuring.
  await sleep(5000);
  const loaded = await hub.memory();
  log(`idle for ${IDLE_SECONDS} s…`);
  if (options.idleProfDir) await hub.startProfile();
  const sampler = new CpuSampler(hub.pid, 1000).start();
  await sleep(IDLE_SECONDS * 1000);
  sampler.stop();
  if (options.idleProfDir) {
    const file = join(options.idleProfDir, `hub-idle-${Date.now()}.cpuprofile`);
    await hub.stopProfile(file);
    log(`idle profile: ${file}`);
  }
  const after = await fleet.stats();
  const per = (a: number, b: number) => (a - b) / connections;
  return {
    connections,
    requested: REQUESTED_CONNECTIONS,
    fdLimit: setup.fdLimit,
    tenants: setup.tenants,
    connectSeconds: setup.connectMs / 1000,
    connectCpuSeconds: setup.connectCpuSeconds,
    base: setup.base,
    loaded,
    rssPerConnection: per(loaded.rss, setup.base.rss),
    heapPerConnection: per(loaded.heapUsed, setup.base.heapUsed),
    externalPerConnection: per(loaded.external + loaded.arrayBuffers, setup.base.external + setup.base.arrayBuffers),
    idleSeconds: IDLE_SECONDS,
    idleCpuPercent: (sampler.total() / IDLE_SECONDS) * 100,
    droppedWhileIdle: connections - after.greeted,
  };
}

const KB = 1024;
const MB = 1024 * 1024;

export function connectionsTable(r: ConnectionsResult): string {
  const goal = (ok: boolean) => (ok ? 'met' : '**missed**');
  return markdownTable(
    ['figure', 'value', 'goal'],
    [
      ['idle connections held by one hub', formatNumber(r.connections), `${formatNumber(r.requested)}`],
      ['time to open them all (from scratch)', `${r.connectSeconds.toFixed(1)} s (${formatNumber(r.connections / r.connectSeconds)}/s)`, ''],
      ['hub CPU to open them all', `${r.connectCpuSeconds.toFixed(1)} CPU-s (${formatNumber((r.connectCpuSeconds / r.connections) * 1e6)} µs per connection)`, ''],
      ['hub RSS: warmed up, no connections → all connected', `${(r.base.rss / MB).toFixed(0)} MB → ${(r.loaded.rss / MB).toFixed(0)} MB`, ''],
      ['hub heap used: warmed up → all connected', `${(r.base.heapUsed / MB).toFixed(1)} MB → ${(r.loaded.heapUsed / MB).toFixed(1)} MB`, ''],
      ['**RSS per connection**', `${(r.rssPerConnection / KB).toFixed(1)} KB`, `< 20 KB (${goal(r.rssPerConnection < 20 * KB)})`],
      ['heap per connection', `${(r.heapPerConnection / KB).toFixed(1)} KB`, ''],
      ['external + array buffers per connection', `${(r.externalPerConnection / KB).toFixed(2)} KB`, ''],
      [`**hub CPU while idle** (${r.idleSeconds} s)`, `${r.idleCpuPercent.toFixed(1)} % of one core`, ''],
      ['connections dropped while idle', String(r.droppedWhileIdle), '0'],
    ],
  );
}
