/**
 * Hub benchmarks' shell: a throw-away PostgreSQL database, the hub as a separate child process
 * (so its CPU and memory are measured apart from the load generator), CPU and memory read from
 * /proc, and clean-up of everything started, on success, error and Ctrl-C alike.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';
export { freePort } from '../../test/support/net.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Where PostgreSQL is: 127.0.0.1:5432, user postgres, trust (override with BENCH_PG_URL). */
export const PG_ADMIN_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const DB_PREFIX = 'hub_bench_';

// ------------------------------------------------------------------ clean-up

const cleanups: (() => unknown)[] = [];
let exiting = false;

/** Registers work to undo at exit (last registered runs first). Returns a function that runs it now. */
export function onCleanup(fn: () => unknown): () => Promise<void> {
  let done = false;
  const run = async () => {
    if (done) return;
    done = true;
    const i = cleanups.indexOf(run);
    if (i >= 0) cleanups.splice(i, 1);
    await fn();
  };
  cleanups.push(run);
  return run;
}

export async function cleanupAll(): Promise<void> {
  for (const fn of cleanups.slice().reverse()) {
    try {
      await fn();
    } catch (err) {
      console.error(`clean-up failed: ${(err as Error).message}`);
    }
  }
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    if (exiting) process.exit(130);
    exiting = true;
    console.error(`\n${signal}: stopping children and dropping the benchmark databases…`);
    void cleanupAll().finally(() => process.exit(130));
  });
}
// Last resort for children still running when the process exits without clean-up.
process.on('exit', () => {
  for (const p of children) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});
const children = new Set<ChildProcess>();

/** Every child process goes through here, so it is killed at exit whatever happens. */
export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

// ------------------------------------------------------------------ database

/** Creates a database of its own; dropped (with its connections) at clean-up. Drops leftovers of dead runs first. */
export async function createDatabase(label: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  try {
    const { rows } = await admin.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname LIKE $1', [`${DB_PREFIX}%`]);
    for (const { datname } of rows) {
      const pid = Number(/^hub_bench_(\d+)_/.exec(datname)?.[1]);
      if (pid && !pidAlive(pid)) await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
    }
    const name = `${DB_PREFIX}${process.pid}_${label}_${randomBytes(3).toString('hex')}`;
    await admin.query(`CREATE DATABASE "${name}"`);
    const url = new URL(PG_ADMIN_URL);
    url.pathname = `/${name}`;
    const drop = onCleanup(async () => {
      const c = new pg.Client({ connectionString: PG_ADMIN_URL });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await c.end();
      }
    });
    return { url: url.toString(), drop };
  } finally {
    await admin.end();
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

// ------------------------------------------------------------------ /proc

const CLK_TCK = 100;
const PAGE = 4096;

/** CPU seconds (user + system) a process used so far, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** Resident set size in bytes. */
export function rssBytes(pid: number): number {
  const statm = readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ');
  return Number(statm[1]) * PAGE;
}

/** Open file descriptors of a process. */
export function openFiles(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

/** The hard limit on open files of this process (children inherit it). */
export function openFilesLimit(): { soft: number; hard: number } {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  const parts = line?.trim().split(/\s{2,}/) ?? [];
  const n = (s: string | undefined) => (s === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(s));
  return { soft: n(parts[1]), hard: n(parts[2]) };
}

/** Samples a process's CPU use; `peak` is the highest use over any `windowMs` window, in cores. */
export class CpuSampler {
  private readonly samples: { t: number; cpu: number }[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly pid: number,
    private readonly everyMs = 250,
  ) {}

  start(): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.everyMs);
    return this;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.sample();
  }

  private sample(): void {
    try {
      this.samples.push({ t: performance.now(), cpu: cpuSeconds(this.pid) });
    } catch {
      // The process exited.
    }
  }

  /** Highest CPU use (cores) over a window of about `windowMs`. */
  peak(windowMs = 1000): number {
    let best = 0;
    let j = 0;
    for (let i = 0; i < this.samples.length; i++) {
      const b = this.samples[i] as { t: number; cpu: number };
      while (j < i && b.t - (this.samples[j + 1] as { t: number }).t >= windowMs) j++;
      const a = this.samples[j] as { t: number; cpu: number };
      if (b.t - a.t >= windowMs * 0.9) best = Math.max(best, (b.cpu - a.cpu) / ((b.t - a.t) / 1000));
    }
    return best;
  }

  /** CPU seconds used between the first and last sample. */
  total(): number {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    return first && last ? last.cpu - first.cpu : 0;
  }
}

// ------------------------------------------------------------------ the hub child

/** Where the hub is compiled for benchmarks (not dist/, which belongs to `npm run build`). */
const BUILD_DIR = join(ROOT, 'node_modules', '.cache', 'hub-bench');
let built: Promise<string> | undefined;

/**
 * Compiles the hub as it is in the work tree (plus the probe) into a private directory, once per
 * run (incremental), so the hub child runs plain JavaScript as in production: no tsx loader in
 * its start-up time or its profiles. BENCH_HUB_TSX=1 runs the sources through tsx instead.
 */
export function buildHub(): Promise<string> {
  return (built ??= new Promise((resolve, reject) => {
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const args = [tsc, '-p', 'bench/lib/tsconfig.hub-bench.json', '--outDir', BUILD_DIR, '--tsBuildInfoFile', join(BUILD_DIR, '.tsbuildinfo')];
    const p = track(spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    p.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    p.once('exit', (code) => {
      // 2: type errors, JavaScript emitted anyway (another part of the tree may be mid-change).
      if (code === 2) process.stderr.write(`compiling the hub reported type errors; running what was emitted:\n${out.slice(0, 2000)}\n`);
      if (code === 0 || code === 2) resolve(BUILD_DIR);
      else reject(new Error(`compiling the hub failed:\n${out}`));
    });
  }));
}

async function hubCommand(): Promise<{ flags: string[]; entry: string }> {
  if (process.env.BENCH_HUB_TSX === '1') {
    return { flags: ['--import', 'tsx', '--import', './bench/lib/hub-probe.ts'], entry: 'cli/hub-broker.ts' };
  }
  const dir = await buildHub();
  return { flags: ['--import', pathToFileURL(join(dir, 'bench/lib/hub-probe.js')).href], entry: join(dir, 'cli/hub-broker.js') };
}

/** Two random signing keys, `kid:secret,…`, as HUB_JWT_KEYS takes them. */
export function randomJwtKeys(): string {
  return `b1:${randomBytes(32).toString('base64url')},b0:${randomBytes(32).toString('base64url')}`;
}


export interface HubProcessOptions {
  readonly databaseUrl: string;
  readonly jwtKeys: string;
  readonly port: number;
  /** More HUB_* settings. */
  readonly env?: Record<string, string>;
  /** `node --cpu-prof` into this directory. */
  readonly cpuProfDir?: string;
  /** `node --heap-prof` into this directory. */
  readonly heapProfDir?: string;
  /** Label for the log file name. */
  readonly label?: string;
}

export interface MemoryReport {
  readonly rss: number;
  readonly heapUsed: number;
  readonly heapTotal: number;
  readonly external: number;
  readonly arrayBuffers: number;
}

/**
 * One hub child process: `node cli/hub-broker.js hub` compiled from the work tree (see
 * `buildHub`) with its settings in the environment, plus bench/lib/hub-probe preloaded (memory
 * after a full GC and CPU profiles on request; exits when this process goes away). Its log goes
 * to a file.
 */
export class HubProcess {
  readonly child: ChildProcess;
  readonly logFile: string;
  readonly url: string;
  private readonly exited: Promise<number | null>;
  private probeSeq = 0;

  private constructor(opts: HubProcessOptions, command: { flags: string[]; entry: string }) {
    const dir = process.env.BENCH_LOG_DIR ?? tmpdir();
    this.logFile = join(dir, `hub-bench-${process.pid}-${opts.label ?? 'hub'}-${Date.now()}.log`);
    const fd = openSync(this.logFile, 'a');
    const flags = ['--expose-gc', ...command.flags];
    if (opts.cpuProfDir) flags.push('--cpu-prof', `--cpu-prof-dir=${opts.cpuProfDir}`);
    if (opts.heapProfDir) flags.push('--heap-prof', `--heap-prof-dir=${opts.heapProfDir}`);
    this.child = track(
      spawn(process.execPath, [...flags, command.entry, 'hub'], {
        cwd: ROOT,
        stdio: ['ignore', fd, fd, 'ipc'],
        env: {
          ...process.env,
          DATABASE_URL: opts.databaseUrl,
          HUB_JWT_KEYS: opts.jwtKeys,
          HUB_HOST: '127.0.0.1',
          HUB_PORT: String(opts.port),
          ...opts.env,
        },
      }),
    );
    closeSync(fd);
    this.url = `http://127.0.0.1:${opts.port}`;
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  get pid(): number {
    return this.child.pid as number;
  }

  /** Starts the hub and waits until /health answers. */
  static async start(opts: HubProcessOptions, timeoutMs = 60_000): Promise<HubProcess> {
    const hub = await HubProcess.spawn(opts);
    await hub.ready(timeoutMs);
    return hub;
  }

  /** Starts the hub without waiting for it to listen (its pid is there at once, to sample its start-up). */
  static async spawn(opts: HubProcessOptions): Promise<HubProcess> {
    const hub = new HubProcess(opts, await hubCommand());
    onCleanup(() => hub.kill());
    return hub;
  }

  /** Waits until /health answers; throws when the hub exits or takes longer than `timeoutMs`. */
  async ready(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`the hub exited during start-up; see ${this.logFile}:\n${this.tail()}`);
      }
      try {
        const res = await fetch(`${this.url}/health`);
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`the hub did not start within ${timeoutMs} ms; see ${this.logFile}`);
      await sleep(25);
    }
  }

  /** The last lines of the hub's log. */
  tail(lines = 20): string {
    if (!existsSync(this.logFile)) return '';
    return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  }

  /** Memory after a full garbage collection, measured inside the hub. */
  memory(timeoutMs = 30_000): Promise<MemoryReport> {
    const id = ++this.probeSeq;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.child.off('message', onMessage);
        reject(new Error('the hub did not answer the memory probe'));
      }, timeoutMs);
      const onMessage = (m: unknown) => {
        const msg = m as { type?: string; id?: number; memory?: MemoryReport };
        if (msg.type !== 'memory' || msg.id !== id || !msg.memory) return;
        clearTimeout(t);
        this.child.off('message', onMessage);
        resolve(msg.memory);
      };
      this.child.on('message', onMessage);
      this.child.send({ type: 'memory', id });
    });
  }

  cpuSeconds(): number {
    return cpuSeconds(this.pid);
  }

  /** Starts a CPU profile inside the hub (one phase only, unlike --cpu-prof). */
  startProfile(): Promise<void> {
    return this.probe({ type: 'profile', action: 'start' });
  }

  /** Stops the profile started by `startProfile` and writes it to `file` (.cpuprofile). */
  stopProfile(file: string): Promise<void> {
    return this.probe({ type: 'profile', action: 'stop', file });
  }

  private probe(msg: Record<string, unknown>, timeoutMs = 30_000): Promise<void> {
    const id = ++this.probeSeq;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.child.off('message', onMessage);
        reject(new Error(`the hub did not answer the ${String(msg.type)} probe`));
      }, timeoutMs);
      const onMessage = (m: unknown) => {
        const r = m as { type?: string; id?: number; error?: string };
        if (r.type !== msg.type || r.id !== id) return;
        clearTimeout(t);
        this.child.off('message', onMessage);
        if (r.error) reject(new Error(r.error));
        else resolve();
      };
      this.child.on('message', onMessage);
      this.child.send({ ...msg, id });
    });
  }

  /** SIGTERM (graceful shutdown: close 1012, finish appends); resolves with the exit code. */
  async stop(timeoutMs = 60_000): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const code = await this.exited;
    clearTimeout(t);
    return code;
  }

  whenExited(): Promise<number | null> {
    return this.exited;
  }

  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ------------------------------------------------------------------ load-generator workers

/**
 * A load-generator worker process (run through tsx), spoken to over IPC: one request at a time,
 * answered in order with `{ok, value}` or `{ok: false, error}`. Exits when this process goes away.
 */
export class IpcWorker<Command> {
  readonly child: ChildProcess;
  private pending: { resolve: (v: unknown) => void; reject: (e: Error) => void }[] = [];
  private queue: Promise<unknown> = Promise.resolve();

  constructor(script: URL, args: readonly string[] = []) {
    this.child = track(
      fork(script.pathname, [...args], { cwd: ROOT, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
    );
    this.child.on('message', (m: { ok: boolean; value?: unknown; error?: string }) => {
      const p = this.pending.shift();
      if (!p) return;
      if (m.ok) p.resolve(m.value);
      else p.reject(new Error(m.error ?? 'worker failed'));
    });
    this.child.once('exit', (code) => {
      for (const p of this.pending.splice(0)) p.reject(new Error(`worker exited (${code})`));
    });
  }

  request<T>(cmd: Command): Promise<T> {
    const run = this.queue.then(
      () =>
        new Promise<T>((resolve, reject) => {
          this.pending.push({ resolve: resolve as (v: unknown) => void, reject });
          this.child.send(cmd as object);
        }),
    );
    this.queue = run.catch(() => undefined);
    return run;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    if (this.child.connected) this.child.disconnect();
    await Promise.race([exited, sleep(5000)]);
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}
