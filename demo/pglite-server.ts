/**
 * Serves one PGlite database to many `pg` connections over TCP, for the demo.
 *
 * PGlite is a single PostgreSQL backend, so every connection shares one session. Two things
 * keep the connections from tripping over each other, which `@electric-sql/pglite-socket`
 * 0.2 does not do (it queues single protocol messages and passes statement names through):
 * - A connection's messages reach the backend in whole exchanges (up to a Sync or a simple
 *   Query), and once an exchange leaves the backend inside a transaction, or without a
 *   ReadyForQuery (Flush, COPY), only that connection is served until it is idle again.
 *   Without this, one connection's simple query lands between another's Parse and Bind and
 *   drops its unnamed statement ("unnamed prepared statement does not exist").
 * - Named prepared statements get a per-connection prefix: node-postgres remembers per client
 *   what it prepared, so two clients preparing `hs_…` would otherwise collide in the one session.
 * Session settings (`SET` without LOCAL), session advisory locks and LISTEN are still shared;
 * the hub and agent use transaction-scoped settings, and the demo polls instead of LISTEN.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { PGlite } from '@electric-sql/pglite';

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;

/** Messages that end an exchange: the backend answers them with ReadyForQuery. */
const EXCHANGE_END = new Set(['S', 'Q', 'H', 'c', 'f', 'd']);

interface Job {
  readonly conn: Conn;
  readonly bytes: Buffer;
}

/** Finds ReadyForQuery in the backend's output, across chunk boundaries. */
class OutputScanner {
  private header: Buffer = Buffer.alloc(0);
  private skip = 0;
  private pendingZ = false;
  /** Status byte of the last ReadyForQuery seen ('I', 'T' or 'E'), if any. */
  ready: string | undefined;

  feed(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        if (this.pendingZ && n > 0) {
          this.ready = String.fromCharCode(chunk[i] as number);
          this.pendingZ = false;
        }
        this.skip -= n;
        i += n;
        continue;
      }
      const need = 5 - this.header.length;
      const take = Math.min(need, chunk.length - i);
      this.header = Buffer.concat([this.header, chunk.subarray(i, i + take)]);
      i += take;
      if (this.header.length === 5) {
        this.pendingZ = this.header[0] === 0x5a;
        this.skip = this.header.readInt32BE(1) - 4;
        this.header = Buffer.alloc(0);
      }
    }
  }
}

class Conn {
  private input: Buffer = Buffer.alloc(0);
  private started = false;
  private exchange: Buffer[] = [];
  readonly statements = new Set<string>();
  closed = false;

  constructor(
    readonly id: number,
    readonly socket: Socket,
    private readonly server: PgliteServer,
  ) {}

  private get prefix(): string {
    return `c${this.id}_`;
  }

  onData(chunk: Buffer): void {
    this.input = this.input.length === 0 ? chunk : Buffer.concat([this.input, chunk]);
    for (;;) {
      if (!this.started) {
        if (this.input.length < 8) return;
        const len = this.input.readInt32BE(0);
        if (this.input.length < len) return;
        const code = this.input.readInt32BE(4);
        const msg = this.input.subarray(0, len);
        this.input = this.input.subarray(len);
        if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
          this.socket.write('N');
          continue;
        }
        if (code === CANCEL_REQUEST) {
          this.socket.end();
          return;
        }
        this.started = true;
        this.server.enqueue({ conn: this, bytes: Buffer.from(msg) });
        continue;
      }
      if (this.input.length < 5) return;
      const len = this.input.readInt32BE(1) + 1;
      if (this.input.length < len) return;
      const msg = this.input.subarray(0, len);
      this.input = this.input.subarray(len);
      const type = String.fromCharCode(msg[0] as number);
      if (type === 'X') {
        this.socket.end();
        return;
      }
      this.exchange.push(this.rename(type, msg));
      if (EXCHANGE_END.has(type)) {
        this.server.enqueue({ conn: this, bytes: Buffer.concat(this.exchange) });
        this.exchange = [];
      }
    }
  }

  /** Prefixes named prepared statements (Parse, Bind, Describe 'S', Close 'S'). */
  private rename(type: string, msg: Buffer): Buffer {
    let at: number;
    if (type === 'P') at = 5;
    else if (type === 'B') at = msg.indexOf(0, 5) + 1;
    else if ((type === 'D' || type === 'C') && msg[5] === 0x53) at = 6;
    else return Buffer.from(msg);
    const end = msg.indexOf(0, at);
    if (end === at) return Buffer.from(msg); // the unnamed statement
    const name = msg.toString('utf8', at, end);
    if (type === 'P') this.statements.add(name);
    const renamed = Buffer.from(this.prefix + name, 'utf8');
    const out = Buffer.concat([msg.subarray(0, at), renamed, msg.subarray(end)]);
    out.writeInt32BE(out.length - 1, 1);
    return out;
  }

  /** `data` may be a view of PGlite's memory, reused by the next exchange: copied. */
  write(data: Uint8Array): void {
    if (!this.closed && this.socket.writable) this.socket.write(Buffer.from(data));
  }

  /** SQL that drops what this connection left in the shared session. */
  cleanupSql(): string {
    return [...this.statements].map((n) => `DEALLOCATE "${(this.prefix + n).replace(/"/g, '""')}";`).join('\n');
  }
}

export interface PgliteServerOptions {
  readonly host?: string;
  /** 0 = any free port. */
  readonly port?: number;
}

export class PgliteServer {
  private server: Server | undefined;
  private readonly conns = new Set<Conn>();
  private queue: Job[] = [];
  /** The connection the backend is reserved for (open transaction or unfinished exchange). */
  private owner: Conn | undefined;
  private running = false;
  private nextId = 1;
  private idle: Promise<void> = Promise.resolve();
  private port = 0;
  private readonly host: string;

  constructor(
    readonly db: PGlite,
    private readonly options: PgliteServerOptions = {},
  ) {
    this.host = options.host ?? '127.0.0.1';
  }

  /** `postgres://postgres@host:port/postgres` */
  get url(): string {
    return `postgres://postgres@${this.host}:${this.port}/postgres`;
  }

  async start(): Promise<void> {
    await this.db.waitReady;
    const server = createServer((socket) => {
      socket.setNoDelay(true);
      const conn = new Conn(this.nextId++, socket, this);
      this.conns.add(conn);
      socket.on('data', (d: Buffer) => {
        try {
          conn.onData(d);
        } catch {
          socket.destroy();
        }
      });
      socket.on('error', () => undefined);
      socket.on('close', () => this.onClose(conn));
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port ?? 0, this.host, () => resolve());
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('the database server has no TCP address');
    this.port = address.port;
  }

  /** Closes every connection and the listener; the database stays open. */
  async stop(): Promise<void> {
    for (const c of this.conns) c.socket.destroy();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    await this.idle;
  }

  /** @internal */
  enqueue(job: Job): void {
    this.queue.push(job);
    if (!this.running) this.idle = this.run();
  }

  private onClose(conn: Conn): void {
    conn.closed = true;
    this.conns.delete(conn);
    this.queue = this.queue.filter((j) => j.conn !== conn);
    // An internal job: roll back what the connection left open, forget its statements.
    this.queue.push({ conn, bytes: Buffer.alloc(0) });
    if (!this.running) this.idle = this.run();
  }

  private next(): Job | undefined {
    if (this.owner === undefined) return this.queue.shift();
    const i = this.queue.findIndex((j) => j.conn === this.owner);
    if (i === -1) return undefined;
    return this.queue.splice(i, 1)[0];
  }

  private async run(): Promise<void> {
    this.running = true;
    try {
      for (let job = this.next(); job; job = this.next()) {
        if (job.bytes.length === 0) {
          await this.cleanup(job.conn);
          continue;
        }
        const scan = new OutputScanner();
        const conn = job.conn;
        try {
          await this.db.runExclusive(() =>
            this.db.execProtocolRawStream(new Uint8Array(job.bytes), {
              onRawData: (d) => {
                scan.feed(d);
                conn.write(d);
              },
            }),
          );
        } catch {
          // PGlite itself failed (not an SQL error, which is an answer): drop the connection.
          conn.socket.destroy();
        }
        this.owner = this.db.isInTransaction() || scan.ready === undefined ? conn : undefined;
        if (conn.closed && this.owner === conn) await this.cleanup(conn);
      }
    } finally {
      this.running = false;
    }
  }

  private async cleanup(conn: Conn): Promise<void> {
    if (this.owner === conn) {
      this.owner = undefined;
      if (this.db.isInTransaction()) await this.db.exec('ROLLBACK').catch(() => undefined);
    }
    const sql = conn.cleanupSql();
    conn.statements.clear();
    if (sql !== '') await this.db.exec(sql).catch(() => undefined);
  }
}
