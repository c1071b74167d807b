/**
 * A Redis primary, one replica and three sentinels from Debian's redis-server, on free loopback
 * ports in a folder of their own (the shared Redis on 6379 serves the other test files), with
 * short failure detection so a test can kill the primary and see the replica promoted.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './net.js';

export const SENTINEL_MASTER = 'hbmaster';

export interface SentinelSetup {
  readonly sentinels: { host: string; port: number }[];
  readonly name: string;
  /** The port of the node that is primary now, as the sentinels say. */
  primaryPort(): number | undefined;
  /** The first primary, killed with SIGKILL as a crash would. */
  killPrimary(): Promise<number>;
  stop(): Promise<void>;
}

function ping(port: number): boolean {
  return spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' }).stdout?.trim() === 'PONG';
}

async function until(what: string, ok: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startSentinels(): Promise<SentinelSetup> {
  const dir = mkdtempSync(join(tmpdir(), 'hb-sentinel-'));
  const children: ChildProcess[] = [];
  const server = (args: string[]) => {
    const c = spawn('redis-server', args, { stdio: 'ignore' });
    children.push(c);
    return c;
  };
  const [primary, replica] = [await freePort(), await freePort()];
  const common = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
  const first = server(['--port', String(primary), ...common]);
  server(['--port', String(replica), ...common, '--replicaof', '127.0.0.1', String(primary)]);
  await until('the primary did not answer', () => ping(primary));
  await until('the replica did not sync', () => /master_link_status:up/.test(spawnSync('redis-cli', ['-p', String(replica), 'info', 'replication'], { encoding: 'utf8' }).stdout ?? ''));
  const sentinels: { host: string; port: number }[] = [];
  for (let i = 0; i < 3; i++) {
    const port = await freePort();
    // Sentinel rewrites its configuration file: one each, writable.
    const conf = join(dir, `sentinel-${i}.conf`);
    writeFileSync(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor ${SENTINEL_MASTER} 127.0.0.1 ${primary} 2`,
        `sentinel down-after-milliseconds ${SENTINEL_MASTER} 1000`,
        `sentinel failover-timeout ${SENTINEL_MASTER} 5000`,
        `sentinel parallel-syncs ${SENTINEL_MASTER} 1`,
        '',
      ].join('\n'),
    );
    server([conf, '--sentinel']);
    sentinels.push({ host: '127.0.0.1', port });
  }
  const primaryPort = (): number | undefined => {
    for (const s of sentinels) {
      const out = spawnSync('redis-cli', ['-p', String(s.port), 'sentinel', 'get-master-addr-by-name', SENTINEL_MASTER], { encoding: 'utf8' }).stdout ?? '';
      const port = Number(out.trim().split('\n')[1]);
      if (port > 0) return port;
    }
    return undefined;
  };
  await until('the sentinels did not agree on the primary', () => sentinels.every((s) => ping(s.port)) && primaryPort() === primary);
  // Each sentinel must know the replica and the other sentinels before a failover can happen.
  await until('the sentinels did not find the replica and each other', () =>
    sentinels.every((s) => {
      // Answered as alternating lines: field, value, field, value…
      const lines = (spawnSync('redis-cli', ['-p', String(s.port), 'sentinel', 'master', SENTINEL_MASTER], { encoding: 'utf8' }).stdout ?? '').trim().split('\n');
      const field = (name: string) => Number(lines[lines.indexOf(name) + 1]);
      return field('num-slaves') >= 1 && field('num-other-sentinels') >= 2;
    }),
  );
  return {
    sentinels,
    name: SENTINEL_MASTER,
    primaryPort,
    async killPrimary() {
      const exited = new Promise((r) => first.once('exit', r));
      first.kill('SIGKILL');
      await exited;
      return primary;
    },
    async stop() {
      await Promise.all(
        children.map(async (c) => {
          if (c.exitCode !== null || c.signalCode !== null) return;
          const exited = new Promise((r) => c.once('exit', r));
          c.kill('SIGKILL');
          await exited;
        }),
      );
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
