/**
 * Bucardo 5.6 as a peer: trigger-based capture at the source (delta tables + a statement trigger
 * that NOTIFYs the daemon), one push sync source → every destination, defaults otherwise
 * (autokick on, so the sync runs as soon as a source transaction commits).
 *
 * Quirks this works around:
 * - `bucardo install` always creates a database named `bucardo` (bucardo.schema hard-codes it), so
 *   the control database cannot be named per run: tearDown drops it, and setUp drops a leftover.
 * - install creates role `bucardo` with a random password and appends it to ~/.pgpass unless the
 *   role exists: we create it first (trust auth), and give every command HOME=<run dir> and
 *   --no-bucardorc so nothing in the real home is read or written.
 * - The default pid dir, log dir and reason/warning/conflict files are under /var/run and
 *   /var/log: all are pointed at a temp dir of the run.
 * - `bucardo start` forks a daemon into a new session and exits at once; `bucardo stop` only
 *   writes a stop file. The daemon's processes (MCP, VAC, controller, kid) are found by that
 *   session id to know when they are gone, and killed if they outlive the stop.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { queryOnce as sql } from '../../test/support/pg-cluster.js';
import { onCleanup, sleep } from '../lib/hub-process.js';
import type { Peer, PeerRun, PeerSite } from './peer.js';

const CONTROL_DB = 'bucardo';
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;

export const bucardo: Peer = {
  name: 'bucardo',
  async setUp(site: PeerSite): Promise<PeerRun> {
    const dir = mkdtempSync(join(tmpdir(), 'hub-broker-peers-bucardo-'));
    const sync = `peers_${site.runId.toLowerCase().replace(/\W/g, '_')}`.slice(0, 40);
    const control = site.control;
    const all = [site.source, ...site.destinations];
    /** Session id of the running daemon, once start() has seen it. */
    let session: number | undefined;

    const logFile = join(dir, 'log.bucardo');
    const logSize = (): number => (existsSync(logFile) ? statSync(logFile).size : 0);
    const logSince = (from: number): string => (existsSync(logFile) ? readFileSync(logFile).subarray(from).toString('utf8') : '');

    const logTail = (): string => {
      try {
        const lines = readFileSync(logFile, 'utf8').trimEnd().split('\n');
        return `\n--- tail of ${logFile}:\n${lines.slice(-40).join('\n')}`;
      } catch {
        return `\n(no Bucardo log in ${dir})`;
      }
    };

    // Connection options first: the CLI reads them before the verb.
    const cli = (...args: string[]) =>
      run('bucardo', ['--no-bucardorc', '--dbhost', '127.0.0.1', '--dbport', String(control.port), ...args], dir);
    const cliControl = (...args: string[]) => cli('--dbuser', CONTROL_DB, '--dbname', CONTROL_DB, '--piddir', dir, ...args);

    /** Stops the daemon (if any) and waits for its processes; kills them if they outlive the stop. */
    const halt = async (): Promise<void> => {
      session ??= sessionOf(mcpPid(dir));
      await cliControl('stop');
      if (session === undefined) return;
      const deadline = Date.now() + STOP_TIMEOUT_MS;
      while (sessionPids(session).length > 0) {
        if (Date.now() > deadline) {
          for (const pid of sessionPids(session)) {
            try {
              process.kill(pid, 'SIGKILL');
            } catch {
              /* gone meanwhile */
            }
          }
          session = undefined;
          throw new Error(`Bucardo did not exit within ${STOP_TIMEOUT_MS / 1000}s of 'bucardo stop'; killed${logTail()}`);
        }
        await sleep(100);
      }
      session = undefined;
    };

    const tearDown = onCleanup(async () => {
      const errors: string[] = [];
      const attempt = async (what: string, fn: () => Promise<unknown>) => {
        try {
          await fn();
        } catch (err) {
          errors.push(`${what}: ${(err as Error).message}`);
        }
      };
      await attempt('stop', halt);
      for (const d of all) await attempt(`drop schema bucardo in ${d.db}`, () => sql(d.url, 'DROP SCHEMA IF EXISTS bucardo CASCADE'));
      await attempt('drop control database', () => control.dropDatabase(CONTROL_DB));
      await attempt('drop role bucardo', () => control.query('DROP ROLE IF EXISTS bucardo'));
      rmSync(dir, { recursive: true, force: true });
      if (errors.length > 0) throw new Error(`Bucardo tear-down (${sync}) failed:\n${errors.join('\n')}`);
    });

    try {
      // A `bucardo` database here can only be a leftover of a run whose tear-down failed.
      await control.dropDatabase(CONTROL_DB);
      await control.query(`DO $$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bucardo') THEN CREATE ROLE bucardo SUPERUSER LOGIN; END IF;
      END $$`);
      await cli('--dbuser', 'postgres', '--dbname', 'postgres', '--piddir', dir, 'install', '--batch');
      await cliControl(
        'set',
        `reason_file=${join(dir, 'restart.reason')}`,
        `warning_file=${join(dir, 'warning.log')}`,
        `log_conflict_file=${join(dir, 'conflict.log')}`,
      );
      const names = ['src', ...site.destinations.map((_, i) => `dst${i + 1}`)];
      for (const [i, d] of all.entries()) await cliControl('add', 'db', names[i] ?? '', ...dbArgs(d.url));
      await cliControl('add', 'table', 'public.peer_item', 'db=src', `relgroup=${sync}`);
      const dbs = names.map((n, i) => `${n}:${i === 0 ? 'source' : 'target'}`).join(',');
      await cliControl('add', 'sync', sync, `relgroup=${sync}`, `dbs=${dbs}`);
    } catch (err) {
      await tearDown().catch(() => undefined);
      throw err;
    }

    let probes = 0;
    return {
      async start() {
        const logFrom = logSize();
        await cliControl('start', '--logdest', dir);
        // Replicating once a probe row (client -1, never counted) inserted at the source reaches
        // every destination; its delete must replicate too, so the tables are left as they were.
        const payload = `bucardo probe ${sync} ${++probes}`;
        const deadline = Date.now() + START_TIMEOUT_MS;
        const waitAll = async (present: boolean, what: string) => {
          for (const d of site.destinations) {
            while ((await count(d.url, payload)) !== (present ? 1 : 0)) {
              // The MCP keeps running when a sync fails validation: fail fast on what it logs.
              const failed = /Validation of sync \S+ FAILED| MCP Exiting/.exec(logSince(logFrom));
              if (failed) throw new Error(`Bucardo sync ${sync} did not start (${failed[0].trim()})${logTail()}`);
              if (Date.now() > deadline) {
                throw new Error(`Bucardo sync ${sync} not replicating: probe ${what} did not reach ${d.db} within ${START_TIMEOUT_MS / 1000}s${logTail()}`);
              }
              await sleep(20);
            }
          }
        };
        try {
          await sql(site.source.url, 'INSERT INTO public.peer_item (client, qty, payload) VALUES (-1, 0, $1)', [payload]);
          await waitAll(true, 'insert');
          await sql(site.source.url, 'DELETE FROM public.peer_item WHERE payload = $1', [payload]);
          await waitAll(false, 'delete');
          session = sessionOf(mcpPid(dir));
          if (session === undefined) throw new Error(`Bucardo replicates but its MCP pid file is missing in ${dir}${logTail()}`);
        } catch (err) {
          await halt().catch(() => undefined); // a failed start leaves no daemon behind
          throw err;
        }
      },
      stop: halt,
      tearDown,
    };
  },
};

/** Runs a command without a shell; rejects with its output on failure. */
function run(cmd: string, args: readonly string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    // HOME: install may append to ~/.pgpass, and the CLI reads ~/.bucardorc.
    execFile(cmd, args, { cwd, env: { ...process.env, HOME: cwd }, timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) {
        const out = `${stdout}${stderr}`.trim();
        reject(new Error(`${cmd} ${args.join(' ')} failed (${err.code ?? err.signal ?? err.message}):\n${out}`));
      } else resolve(stdout);
    });
  });
}

/** `bucardo add db` connection arguments from a postgres:// URL. */
function dbArgs(url: string): string[] {
  const u = new URL(url);
  const args = [
    `dbname=${decodeURIComponent(u.pathname.slice(1))}`,
    `dbhost=${u.hostname}`,
    `dbport=${u.port || '5432'}`,
    `dbuser=${decodeURIComponent(u.username) || 'postgres'}`,
  ];
  if (u.password) args.push(`dbpass=${decodeURIComponent(u.password)}`);
  return args;
}

async function count(url: string, payload: string): Promise<number> {
  const rows = await sql<{ n: number }>(url, 'SELECT count(*)::int AS n FROM public.peer_item WHERE payload = $1', [payload]);
  return rows[0]?.n ?? 0;
}

function mcpPid(dir: string): number | undefined {
  try {
    const pid = Number(/^\d+/.exec(readFileSync(join(dir, 'bucardo.mcp.pid'), 'utf8'))?.[0]);
    return pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** State and session id of a process, from /proc/<pid>/stat; undefined if it is gone. */
function procStat(pid: number): { state: string; session: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command: state ppid pgrp session …
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: f[0] ?? '', session: Number(f[3]) };
  } catch {
    return undefined;
  }
}

function sessionOf(pid: number | undefined): number | undefined {
  return pid === undefined ? undefined : procStat(pid)?.session;
}

/** Live (non-zombie) processes of a session. */
function sessionPids(session: number): number[] {
  return readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map(Number)
    .filter((pid) => {
      const s = procStat(pid);
      return s !== undefined && s.session === session && s.state !== 'Z';
    });
}
