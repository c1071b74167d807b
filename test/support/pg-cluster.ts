/**
 * Throwaway PostgreSQL clusters for tests that stop or restart a server (the shared one on 5432
 * serves every other test file) and for `npm run bench:peers`: `initdb` + `pg_ctl` as the
 * `postgres` user (PostgreSQL refuses to run as root) on a free loopback port, trust auth,
 * `wal_level=logical`, defaults otherwise. `stop()` removes it.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './net.js';

const BIN = (() => {
  const out = spawnSync('pg_config', ['--bindir'], { encoding: 'utf8' });
  // pg_config may be the client's; the server binaries are beside the running server's version.
  const dir = out.status === 0 ? out.stdout.trim() : '';
  for (const d of [dir, '/usr/lib/postgresql/15/bin']) {
    try {
      if (d && statSync(join(d, 'pg_ctl')).isFile()) return d;
    } catch {
      /* next */
    }
  }
  throw new Error('pg_ctl not found (pg_config --bindir, /usr/lib/postgresql/15/bin)');
})();

/** A PostgreSQL binary's command line, run as the postgres user when this process is root. */
function postgresCommand(bin: string, args: readonly string[]): [string, string[]] {
  return process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', join(BIN, bin), ...args]] : [join(BIN, bin), [...args]];
}

function asPostgres(bin: string, args: readonly string[]): void {
  const [cmd, argv] = postgresCommand(bin, args);
  execFileSync(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
}

function asPostgresAsync(bin: string, args: readonly string[]): Promise<void> {
  const [cmd, argv] = postgresCommand(bin, args);
  return new Promise((resolve, reject) => {
    execFile(cmd, argv, (err, _stdout, stderr) => (err ? reject(new Error(`${bin} ${args.at(-1)} failed: ${stderr}`)) : resolve()));
  });
}

/** One statement on a connection of its own (opened and closed around it). */
export async function queryOnce<T extends pg.QueryResultRow = pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(sql, params)).rows;
  } finally {
    await c.end();
  }
}

export interface Cluster {
  readonly label: string;
  readonly port: number;
  /** A URL of database `db` in this cluster. */
  url(db: string): string;
  /** Creates a database (dropped with the cluster). */
  createDatabase(name: string): Promise<string>;
  dropDatabase(name: string): Promise<void>;
  query(sql: string, db?: string): Promise<void>;
  /** A restart, as a primary that fails over or is restarted would be: every connection dropped (`-m fast`). */
  restart(): Promise<void>;
  /** Stops the server and removes its folder. */
  stop(): void;
}

export async function startCluster(label: string, settings: Readonly<Record<string, string>> = {}): Promise<Cluster> {
  const dir = mkdtempSync(join(tmpdir(), `hub-broker-peers-${label}-`));
  if (process.getuid?.() === 0) {
    const pgUser = execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim();
    const pgGroup = execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim();
    chownSync(dir, Number(pgUser), Number(pgGroup));
  }
  const data = join(dir, 'data');
  const port = await freePort();
  asPostgres('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
  const options = { wal_level: 'logical', listen_addresses: '127.0.0.1', port: String(port), unix_socket_directories: dir, ...settings };
  const o = Object.entries(options)
    .map(([k, v]) => `-c ${k}=${v}`)
    .join(' ');
  const log = join(dir, 'postgres.log');
  asPostgres('pg_ctl', ['-D', data, '-l', log, '-o', o, '-w', '-t', '60', 'start']);
  const stop = () => {
    try {
      asPostgres('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
    } catch {
      /* already stopped */
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const url = (db: string) => `postgres://postgres@127.0.0.1:${port}/${db}`;
  const query = async (sql: string, db = 'postgres') => {
    await queryOnce(url(db), sql);
  };
  return {
    label,
    port,
    url,
    query,
    createDatabase: async (name) => {
      await query(`CREATE DATABASE "${name}"`);
      return url(name);
    },
    dropDatabase: (name) => query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`),
    // Asynchronous: a hub in this process must see the outage, not a paused event loop.
    restart: () => asPostgresAsync('pg_ctl', ['-D', data, '-l', log, '-o', o, '-m', 'fast', '-w', '-t', '60', 'restart']),
    stop,
  };
}
