/**
 * `npm run bench:hub [-- relay|compaction|connections|reconnect|routing …] [--cpu-prof DIR] [--heap-prof DIR] [--idle-prof DIR]
 * [--codec json|msgpack] [--no-write]`:
 * the hub benchmarks of issue 3, each against its own database and hub child process. Prints a
 * table per benchmark and replaces its sub-section of `## Hub` in docs/benchmarks.md.
 *
 * Runs under `flock /tmp/hub-broker-bench.lock` (taken here unless HUB_BENCH_LOCKED=1), so
 * benchmarks on a shared machine never overlap.
 */
import os from 'node:os';
import { COMPACTION, compactionTable, runCompaction } from './hub-compaction.js';
import { connectionsTable, prepareFleet, runConnections, type FleetSetup } from './hub-connections.js';
import { reconnectTable, runReconnect } from './hub-reconnect.js';
import { RELAY, relayTable, runRelay, type RelayResult } from './hub-relay.js';
import { ROUTING, routingTable, runRouting, type RoutingResult } from './hub-routing.js';
import { runUnderBenchLock } from './lib/bench-lock.js';
import { cleanupAll } from './lib/hub-process.js';
import { machineLine, timestamp } from './lib/report.js';
import { writeSubsections } from './lib/sections.js';

const BENCHES = ['relay', 'compaction', 'connections', 'reconnect', 'routing'] as const;
type Bench = (typeof BENCHES)[number];
const TITLES: Record<Bench, string> = {
  relay: 'Relay',
  compaction: 'Compaction',
  connections: 'Connections',
  reconnect: 'Reconnect storm',
  routing: 'Routing',
};

function parseArgs(argv: readonly string[]) {
  const selected = new Set<Bench>();
  let cpuProfDir: string | undefined;
  let heapProfDir: string | undefined;
  let idleProfDir: string | undefined;
  let write = true;
  let codecs: ('json' | 'msgpack')[] = ['msgpack', 'json'];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--cpu-prof') cpuProfDir = argv[++i];
    else if (a === '--heap-prof') heapProfDir = argv[++i];
    else if (a === '--idle-prof') idleProfDir = argv[++i];
    else if (a === '--no-write') write = false;
    else if (a === '--codec') codecs = [argv[++i] as 'json' | 'msgpack'];
    else if ((BENCHES as readonly string[]).includes(a)) selected.add(a as Bench);
    else throw new Error(`unknown argument ${a}; use ${BENCHES.join(' | ')}, --cpu-prof DIR, --heap-prof DIR, --idle-prof DIR, --codec json|msgpack, --no-write`);
  }
  return { selected: selected.size === 0 ? new Set(BENCHES) : selected, cpuProfDir, heapProfDir, idleProfDir, write, codecs };
}

function load(): string {
  return (os.loadavg()[0] ?? 0).toFixed(2);
}

function header(bench: Bench, args: string, started: Date, loadBefore: string): string {
  const cmd = `npm run bench:hub -- ${bench}${args}`;
  return (
    `Command: \`${cmd}\` (bench/hub.ts, bench/hub-${bench}.ts), run ${timestamp(started)} on ${machineLine()}. ` +
    `1-minute load average ${loadBefore} before, ${load()} after, on ${os.availableParallelism()} cores` +
    `${Number(loadBefore) > 0.5 ? ' (the machine was shared with other work: figures may be low)' : ''}.`
  );
}

const INTRO = `Each benchmark starts PostgreSQL databases of its own and the hub as a separate child process
(\`node cli/hub-broker.js hub\` compiled from the work tree, default settings unless said otherwise, log level
info), so the hub's CPU and memory (read from /proc, and from inside the hub after a full GC)
are apart from the load generator's, which runs in worker processes of its own. Hub, load
generator and PostgreSQL share the machine's cores.`;

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const profiles = { ...(opts.cpuProfDir ? { cpuProfDir: opts.cpuProfDir } : {}), ...(opts.heapProfDir ? { heapProfDir: opts.heapProfDir } : {}) };
  const parts = new Map<string, string>();
  const extra = opts.codecs.length === 1 ? ` --codec ${opts.codecs[0]}` : '';

  if (opts.selected.has('relay')) {
    const started = new Date();
    const before = load();
    const results: RelayResult[] = [];
    for (const codec of opts.codecs) results.push(await runRelay(codec, profiles));
    const table = relayTable(results);
    console.log(`\nRelay\n\n${table}\n`);
    parts.set(
      TITLES.relay,
      `${header('relay', extra, started, before)}

One tenant, 1 sender and ${RELAY.receivers} receivers, each its own WebSocket to one hub; per codec a fresh
database and hub. Changes are \`customer\` updates in text form (~500 bytes as JSON), five per
source transaction. **Latency**: the sender offers ${RELAY.fixedRate.toLocaleString('en-US')} changes/s, a batch every ${RELAY.tickMs} ms
whatever the acknowledgements (open loop), ${RELAY.warmupSeconds} s warm-up then ${RELAY.latencySeconds} s measured; each receiver times
every change from the moment the sender sent it to the arrival of its \`sync.deliver\`, and
answers \`sync.applied\` per frame as an agent does. **Saturation**: ${RELAY.window} batches of ${RELAY.batch} changes
kept unacknowledged (the hub's per-connection queue holds 32 frames, group commit takes up to 16),
${RELAY.rampSeconds} s ramp then ${RELAY.saturationSeconds} s measured. Rate limits raised to 100,000 frames/s (the limiter still
runs; the default of 500 frames/s per branch would cap the fixed load's small batches).

${table}`,
    );
  }

  if (opts.selected.has('compaction')) {
    const started = new Date();
    const before = load();
    const r = await runCompaction();
    const table = compactionTable(r);
    console.log(`\nCompaction\n\n${table}\n`);
    parts.set(
      TITLES.compaction,
      `${header('compaction', '', started, before)}

The compactor (hub/compactor.ts) alone, in this process, against a fresh tenant schema: per round
${COMPACTION.entriesPerRound.toLocaleString('en-US')} of the relay's \`customer\` updates over ${COMPACTION.rows.toLocaleString('en-US')} rows (each row twice a round) are
appended, then folded by one \`compact()\`. Round 1 creates each row's state, the later rounds
rewrite it. At full relay load the compactor shares the hub database with appends and reads:
its cost per entry is part of what the relay can sustain. For comparison, the compactor before
tenant migration 4 (state keyed by \`(tbl, pk jsonb)\`, written with an upsert) ran this at
10,800–15,100 entries/s with 56–73 µs of database CPU per entry (same command, 2026-11-27).

${table}`,
    );
  }

  let setup: FleetSetup | undefined;
  try {
    if (opts.selected.has('connections') || opts.selected.has('reconnect')) {
      const started = new Date();
      const before = load();
      setup = await prepareFleet(profiles);
      if (opts.selected.has('connections')) {
        const r = await runConnections(setup, opts.idleProfDir ? { idleProfDir: opts.idleProfDir } : {});
        const table = connectionsTable(r);
        console.log(`\nConnections\n\n${table}\n`);
        const short =
          r.connections < r.requested
            ? ` The hub holds ${r.connections.toLocaleString('en-US')}, not ${r.requested.toLocaleString('en-US')}: this machine's hard limit on open files is ${r.fdLimit.toLocaleString('en-US')} and cannot be raised without CAP_SYS_RESOURCE; figures per connection do not depend on the count.`
            : '';
        parts.set(
          TITLES.connections,
          `${header('connections', '', started, before)}

${r.requested.toLocaleString('en-US')} branches over ${r.tenants} tenants (rows bulk-inserted with SQL, JWTs minted with the hub's
keys), connected with MessagePack from 4 worker processes, each connection from a loopback address of its own (127.10–13.x.y); \`HUB_MAX_CONNECTIONS\`
raised to ${(r.requested + 1000).toLocaleString('en-US')}, everything else default (heartbeat every 30 s, log-head poll every 5 s,
status resync every 30 s).${short} Memory is measured inside the hub after a full GC, first with
the hub warmed up by 200 connections that then closed, then with every connection open and 5 s
settled; per connection = difference ÷ connections. Idle CPU: the hub's CPU time over ${r.idleSeconds} s of idle
connections (one heartbeat round of pings included). For scale: a bare \`ws\` socket costs about
7 KB on Node 20.

${table}`,
        );
      }
      if (opts.selected.has('reconnect')) {
        const started = new Date();
        const beforeStorm = load();
        const { result, hub } = await runReconnect(setup);
        setup = { ...setup, hub };
        const table = reconnectTable(result);
        console.log(`\nReconnect storm\n\n${table}\n`);
        parts.set(
          TITLES['reconnect'],
          `${header('reconnect', '', started, beforeStorm)}

The ${result.connections.toLocaleString('en-US')} connections of the connections benchmark, dropped at once by a hub restart:
SIGTERM (graceful shutdown, close 1012 to every socket), then the same command starts a new hub on
the same port as soon as the old one exited. Each branch reconnects as the agent does
(agent/backoff.ts: within a random 0–1 s after 1012, then, while nobody listens, exponential
backoff with full jitter from 1 s, doubling, at most 5 s; an upgrade unanswered after 15 s is
given up and tried again) with its still-valid JWT, from a loopback address of its own; a
branch is back when hello arrived. Before the new hub listens, the benchmark raises the
kernel's cap on its accept queue (\`net.core.somaxconn\`) to 65,535 when it has the privilege,
as docs/operations.md advises for hubs holding this many branches. At the default 4,096, one
storm dropped 111,587 SYNs (\`nstat\` TcpExtListenOverflows), which TCP retried 1, 3, 7, 15 s
later; the hub of 8fd7561 took 47.2 s to full recovery that way and 31.4 s with the cap raised,
back to back (2026-11-27 11:52 and 11:55 UTC). Peak CPU is the new hub's, over 1-s windows
sampled from /proc.

${table}`,
        );
      }
    }
  } finally {
    await setup?.fleet.stop();
    await setup?.hub.stop();
    await cleanupAll();
  }

  if (opts.selected.has('routing')) {
    const started = new Date();
    const before = load();
    const results: RoutingResult[] = [];
    // Alternated per size, so the host's drift shows in both modes alike.
    for (const n of ROUTING.sizes) for (const mode of ['routes', 'routes, no repair', 'full mesh'] as const) results.push(await runRouting(n, mode));
    const table = routingTable(results);
    console.log(`\nRouting\n\n${table}\n`);
    parts.set(
      TITLES.routing,
      `${header('routing', '', started, before)}

One tenant of N branches (hq and N-1 stores, each a real MessagePack socket acknowledging what it is
delivered) through one hub process. hq sends ${ROUTING.rate} orders/s (batches of ${ROUTING.batch}), each for one
store (\`store_id\`), for ${ROUTING.seconds} s after ${ROUTING.warmupSeconds} s of warm-up. With routes (\`orders\` from hq to stores with
\`store_id = branch.store_id\`) an order reaches its store only; with full mesh every store. Latency:
from the order's send to its delivery, at every receiver. Hub CPU: the hub process, from /proc. The
load generator shares the cores with the hub and PostgreSQL, so at full mesh and 300 branches its
own decoding of the deliveries competes with the hub. The cursor of a branch that was sent nothing
is written at most every 5 s (hub/cursor-writer.ts): when every such move was written (each 100 ms),
the same run with routes cost 854, 1,181 and 2,081 µs of hub CPU per change at 30, 100 and 300
branches (2026-12-03 13:31 UTC), growing with the tenant's size. The hub's maintenance runs at its
default interval (10 s) during the load, so with routes the figures include route repair's replay
of every order (\`orders\` has a filtered route); \`routes, no repair\` is the same with maintenance
held off (\`HUB_MAINTENANCE_INTERVAL_MS=3600000\`), alternated with it per size: the difference is
what compaction and route repair cost together.

${table}`,
    );
  }

  if (opts.write && parts.size > 0) {
    await writeSubsections('Hub', INTRO, parts, BENCHES.map((b) => TITLES[b]));
    console.log(`wrote ${[...parts.keys()].map((p) => `"Hub / ${p}"`).join(', ')} in docs/benchmarks.md`);
  }
}

await runUnderBenchLock(main, cleanupAll);
