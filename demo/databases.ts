/**
 * The demo's embedded PostgreSQL: one PGlite database per name (the hub, each branch), each in
 * a folder of its own under one data folder and served over TCP on a free loopback port, so the
 * unchanged `pg`-based hub and agent code talks to it like to any PostgreSQL server.
 */
import { mkdtemp, mkdir, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PgliteServer } from './pglite-server.js';

export interface EmbeddedDatabase {
  readonly name: string;
  /** `postgres://postgres@127.0.0.1:<port>/postgres` */
  readonly url: string;
  readonly dataDir: string;
}

export class DataDirError extends Error {
  override readonly name = 'DataDirError';
}

export class EmbeddedDatabases {
  private readonly open = new Map<string, { db: PGlite; server: PgliteServer; info: EmbeddedDatabase }>();
  private template: Promise<Blob> | undefined;

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
    // initdb runs once per demo; every database starts as a copy of that cluster (5× faster).
    this.template ??= PGlite.create().then(async (t) => {
      const dump = await t.dumpDataDir('none');
      await t.close();
      return dump;
    });
    const dataDir = join(this.root, name);
    const db = await PGlite.create(dataDir, { loadDataDir: await this.template });
    const server = new PgliteServer(db, { host: '127.0.0.1', port: 0 });
    try {
      await server.start();
    } catch (err) {
      await db.close().catch(() => undefined);
      throw err;
    }
    const info = { name, url: server.url, dataDir };
    this.open.set(name, { db, server, info });
    return info;
  }

  get(name: string): EmbeddedDatabase | undefined {
    return this.open.get(name)?.info;
  }

  /** Drops every connection and closes every database (their files stay). */
  async stop(): Promise<void> {
    const all = [...this.open.values()];
    this.open.clear();
    await Promise.all(
      all.map(async ({ db, server }) => {
        await server.stop().catch(() => undefined);
        await db.close().catch(() => undefined);
      }),
    );
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
