/**
 * Reconnect storm: the fleet of the connections benchmark is dropped at once by a hub restart
 * (SIGTERM: graceful close 1012; then the hub starts again on the same port). Every branch
 * reconnects as the agent does (agent/backoff.ts) with its still-valid JWT; recovered = every
 * connection has received hello again. Peak CPU is the new hub's, over 1-second windows.
 */
import type { FleetSetup } from './hub-connections.js';
import { profile } from './hub-connections.js';
import { raiseAcceptQueue } from './lib/accept-queue.js';
import { buildHub, CpuSampler, HubProcess } from './lib/hub-process.js';
import { formatNumber, markdownTable } from './lib/report.js';

export interface ReconnectResult {
  readonly connections: number;
  /** SIGTERM → old hub exited (graceful close of every socket). */
  readonly shutdownSeconds: number;
  /** Old hub exited → new hub answers /health. */
  readonly startSeconds: number;
  /** SIGTERM → every connection greeted again. */
  readonly recoverySeconds: number;
  /** New hub listening → every connection greeted again. */
  readonly afterListenSeconds: number;
  readonly peakCpuCores: number;
  /** CPU seconds the new hub used from its start to full recovery. */
  readonly cpuSeconds: number;
  readonly attempts: number;
  readonly refused: Record<string, number>;
  readonly failed: Record<string, number>;
  readonly closes: Record<string, number>;
  readonly rssAfterMB: number;
  /** CPU seconds of the load generator's workers from SIGTERM to full recovery. */
  readonly generatorCpuSeconds: number;
  /** The kernel's cap on the new hub's accept queue (net.core.somaxconn), and before the run. */
  readonly acceptQueue: { readonly somaxconn: number; readonly before: number };
}

const log = (s: string) => process.stderr.write(`[reconnect] ${s}\n`);
const wall = () => performance.timeOrigin + performance.now();

/** Restarts the hub under the fleet; `setup.hub` is replaced by the new process. */
export async function runReconnect(setup: FleetSetup & { hub: HubProcess }): Promise<{ result: ReconnectResult; hub: HubProcess }> {
  const { fleet, connections } = setup;
  await fleet.reset();
  log(`restarting the hub under ${connections} connections…`);
  await buildHub();
  // Before the new hub listens: the kernel fixes a socket's accept queue at listen().
  const queue = raiseAcceptQueue();
  try {
    const genCpu0 = fleet.cpuSeconds();
    const t0 = wall();
    await setup.hub.stop();
    const tExit = wall();
    const hub = await HubProcess.spawn({
      databaseUrl: setup.databaseUrl,
      jwtKeys: setup.jwtKeys,
      port: setup.port,
      env: setup.hubEnv,
      label: 'conn-restarted',
      ...profile(setup.profileDir ? { cpuProfDir: setup.profileDir } : {}),
    });
    const sampler = new CpuSampler(hub.pid, 250).start();
    await hub.ready(120_000);
    const tListen = wall();
    let shown = 0;
    const done = await fleet.waitAllGreeted(300_000, (s) => {
      if (wall() - shown > 2000) {
        shown = wall();
        log(`${s.greeted} of ${s.wanted} back after ${((wall() - t0) / 1000).toFixed(1)} s`);
      }
    });
    sampler.stop();
    const generatorCpuSeconds = fleet.cpuSeconds() - genCpu0;
    const mem = await hub.memory();
    const tFull = done.allGreetedAt;
    const result: ReconnectResult = {
      connections,
      shutdownSeconds: (tExit - t0) / 1000,
      startSeconds: (tListen - tExit) / 1000,
      recoverySeconds: (tFull - t0) / 1000,
      afterListenSeconds: (tFull - tListen) / 1000,
      peakCpuCores: sampler.peak(1000),
      cpuSeconds: sampler.total(),
      attempts: done.attempts,
      refused: done.refused,
      failed: done.failed,
      closes: done.closes,
      rssAfterMB: mem.rss / 1024 / 1024,
      generatorCpuSeconds,
      acceptQueue: { somaxconn: queue.somaxconn, before: queue.before },
    };
    log(`all ${connections} back ${result.recoverySeconds.toFixed(1)} s after SIGTERM`);
    return { result, hub };
  } finally {
    queue.restore();
  }
}

function counts(m: Record<string, number>): string {
  const e = Object.entries(m).sort((a, b) => b[1] - a[1]);
  return e.length === 0 ? 'none' : e.map(([k, v]) => `${k}: ${formatNumber(v)}`).join(', ');
}

export function reconnectTable(r: ReconnectResult): string {
  return markdownTable(
    ['figure', 'value', 'goal'],
    [
      ['connections dropped by the restart', formatNumber(r.connections), ''],
      [
        "new hub's accept queue (net.core.somaxconn)",
        r.acceptQueue.somaxconn === r.acceptQueue.before
          ? `${formatNumber(r.acceptQueue.somaxconn)} (as found)`
          : `${formatNumber(r.acceptQueue.somaxconn)} (raised from ${formatNumber(r.acceptQueue.before)} for the run)`,
        '',
      ],
      ['SIGTERM → old hub exited (close 1012 to every socket)', `${r.shutdownSeconds.toFixed(1)} s`, ''],
      ['old hub exited → new hub listening', `${r.startSeconds.toFixed(1)} s`, ''],
      ['new hub listening → all back (hello received)', `${r.afterListenSeconds.toFixed(1)} s`, ''],
      ['**SIGTERM → all back (full recovery)**', `${r.recoverySeconds.toFixed(1)} s`, `< 30 s (${r.recoverySeconds < 30 ? 'met' : '**missed**'})`],
      ['**peak hub CPU** (1-s window)', `${(r.peakCpuCores * 100).toFixed(0)} % of one core`, ''],
      ['hub CPU from start to full recovery', `${r.cpuSeconds.toFixed(1)} CPU-s (${formatNumber((r.cpuSeconds / r.connections) * 1e6)} µs per connection, start-up included)`, ''],
      ['hub RSS after recovery', `${r.rssAfterMB.toFixed(0)} MB`, ''],
      ['load generator CPU, SIGTERM to full recovery (4 workers)', `${r.generatorCpuSeconds.toFixed(1)} CPU-s (${((r.generatorCpuSeconds / r.recoverySeconds) * 100).toFixed(0)} % of one core on average)`, ''],
      ['connection attempts', formatNumber(r.attempts), ''],
      ['attempts refused with an HTTP status', counts(r.refused), ''],
      ['attempts failed (no hub listening)', counts(r.failed), ''],
      ['close codes seen by the branches', counts(r.closes), ''],
    ],
  );
}
