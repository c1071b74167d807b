/**
 * The demo's embedded PostgreSQL: one PGlite database per name (the hub, each branch), each in
 * a folder of its own under one data folder, each in a worker thread of its own, served over
 * TCP on a free loopback port, so the unchanged `pg`-based hub and agent code talks to it like
 * to any PostgreSQL server.
 */
import { mkdtemp, mkdir, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { WorkerInput, WorkerReply, WorkerRequest } from './database-worker.js';

export interface EmbeddedDatabase {
  readonly name: string;
  /** `postgres://postgres@127.0.0.1:<port>/postgres` */
  readonly url: string;
  readonly dataDir: string;
}

export class DataDirError extends Error {
  override readonly name = 'DataDirError';
}

/**
 * Compiled, this file is databases.js next to database-worker.js. Run from source by tsx, the
 * worker is .ts, and tsx's loader is not active in worker threads: the worker registers it first.
 */
function newWorker(workerData: WorkerInput): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./database-worker.js', import.meta.url), { workerData });
  const worker = new URL('./database-worker.ts', import.meta.url).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(worker)}); })`;
  return new Worker(boot, { eval: true, workerData });
}

/** A database worker and the replies it has not been asked for yet. */
class DatabaseThread {
  private readonly waiting: { type: WorkerReply['type']; resolve: (m: WorkerReply) => void; reject: (e: Error) => void }[] = [];
  private exited = false;

  constructor(readonly worker: Worker) {
    worker.on('message', (m: WorkerReply) => {
      if (m.type === 'error') {
        for (const w of this.waiting.splice(0)) w.reject(new Error(m.message));
        return;
      }
      const i = this.waiting.findIndex((w) => w.type === m.type);
      if (i >= 0) this.waiting.splice(i, 1)[0]?.resolve(m);
    });
    const fail = (err: Error) => {
      this.exited = true;
      for (const w of this.waiting.splice(0)) w.reject(err);
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the database thread exited (code ${code})`)));
  }

  expect<T extends WorkerReply['type']>(type: T): Promise<Extract<WorkerReply, { type: T }>> {
    if (this.exited) return Promise.reject(new Error('the database thread has exited'));
    return new Promise((resolve, reject) => this.waiting.push({ type, resolve: resolve as (m: WorkerReply) => void, reject }));
  }

  ask<T extends WorkerReply['type']>(request: WorkerRequest, reply: T): Promise<Extract<WorkerReply, { type: T }>> {
    const answer = this.expect(reply);
    this.worker.postMessage(request);
    return answer;
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    await this.ask({ type: 'stop' }, 'stopped').catch(() => undefined);
    await this.worker.terminate();
  }

  /** Ends the thread at once, whatever its database is doing. */
  async kill(): Promise<void> {
    await this.worker.terminate();
  }
}

export class EmbeddedDatabases {
  private readonly open = new Map<string, { thread: DatabaseThread; info: EmbeddedDatabase }>();
  /** Every thread started, stopped or not: `kill` ends those a stop still waits for. */
  private readonly threads = new Set<DatabaseThread>();
  /** The first database's fresh cluster, which every later one starts from (initdb once). */
  private template: Promise<ArrayBuffer> | undefined;

  private constructor(
    /** The data folder. */
    readonly root: string,
    /** Whether the folder was made by this run (then it is removed whole). */
    private readonly madeRoot: boolean,
  ) {}

  /**
   * A temp folder, or `dataDir`, which must be empty or not exist yet: the demo starts from
   * nothing each time, and never removes anything it did not create.
   */
  static async create(dataDir?: string): Promise<EmbeddedDatabases> {
    if (dataDir === undefined) return new EmbeddedDatabases(await mkdtemp(join(tmpdir(), 'hub-broker-demo-')), true);
    const root = resolve(dataDir);
    const entries = await readdir(root).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return null;
      throw new DataDirError(`--data-dir ${root}: ${err.code ?? err.message}`);
    });
    if (entries !== null && entries.length > 0) {
      throw new DataDirError(`--data-dir ${root} is not empty; give an empty or new folder (the demo starts from nothing)`);
    }
    await mkdir(root, { recursive: true });
    return new EmbeddedDatabases(root, entries === null);
  }

  /** A new database, served on a free port. */
  async start(name: string): Promise<EmbeddedDatabase> {
    const first = this.template === undefined;
    let made: (t: ArrayBuffer) => void = () => undefined;
    let failed: (e: Error) => void = () => undefined;
    if (first) {
      this.template = new Promise((res, rej) => ((made = res), (failed = rej)));
      this.template.catch(() => undefined);
    }
    const dataDir = join(this.root, name);
    let template: ArrayBuffer | undefined;
    try {
      template = first ? undefined : await this.template;
    } catch {
      template = undefined; // the first database failed; this one runs initdb itself
    }
    const input: WorkerInput = { dataDir, template };
    const thread = new DatabaseThread(newWorker(input));
    this.threads.add(thread);
    try {
      const { url } = await thread.expect('ready');
      if (first) {
        // Before anyone connects: the template is a cluster nobody has used yet.
        made((await thread.ask({ type: 'dump' }, 'dump')).tarball);
      }
      const info = { name, url, dataDir };
      this.open.set(name, { thread, info });
      return info;
    } catch (err) {
      failed(err as Error);
      await thread.stop();
      throw err;
    }
  }

  get(name: string): EmbeddedDatabase | undefined {
    return this.open.get(name)?.info;
  }

  /** Drops every connection and closes every database (their files stay). */
  async stop(): Promise<void> {
    const all = [...this.open.values()];
    this.open.clear();
    await Promise.all(all.map(({ thread }) => thread.stop()));
  }

  /**
   * Ends every database thread at once, also those a `stop` still waits for (a database busy
   * with a long statement answers it only when done, and would write into a removed folder).
   */
  async kill(): Promise<void> {
    this.open.clear();
    await Promise.all([...this.threads].map((t) => t.kill().catch(() => undefined)));
  }

  /** Removes what this run created: the whole folder if it made it, else the databases in it. */
  async remove(): Promise<void> {
    if (this.madeRoot) {
      await rm(this.root, { recursive: true, force: true });
      return;
    }
    for (const entry of await readdir(this.root).catch(() => [])) {
      await rm(join(this.root, entry), { recursive: true, force: true });
    }
  }
}
