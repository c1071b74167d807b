/**
 * The agent's side of the wire (DESIGN.md, docs/architecture.md): token from `/auth/token`, one
 * WebSocket to `/ws`, `hello`, then three flows over it: the outbox goes out as `sync.batch`
 * (a few in flight, rows dropped on `sync.ack`), `sync.deliver` and `snapshot.*` are applied in
 * order and answered, and conflicts are reported. Reconnects with exponential backoff and full
 * jitter; close codes decide how soon. Decisions live in backoff.ts and in-flight.ts; this file
 * does the I/O.
 */
import type { Logger } from 'pino';
import type pg from 'pg';
import WebSocket from 'ws';
import { codecForSubprotocol, decodeFrame, jsonCodec, msgpackCodec, type Codec } from '../protocol/codec.js';
import {
  type AgentToHub,
  type ConflictNotify,
  type ErrorFrame,
  type Hello,
  type HubToAgent,
  type SyncAck,
  type SyncDeliver,
} from '../protocol/messages.js';
import { parseHubFrame } from '../protocol/validate.js';
import type { ApplyEngine, ApplyResult } from './apply/engine.js';
import { SchemaBlocked } from './schema/apply.js';
import { schemaRetryDelay } from './schema/plan.js';
import { closeAction, deadAfter, HANDSHAKE_TIMEOUT_MS, reconnectDelay, type CloseAction } from './backoff.js';
import { catalogReport } from './catalog-report.js';
import { hubEndpoints, type AgentConfig, type HubEndpoints } from './config.js';
import { InFlight, nextBatchCap } from './in-flight.js';
import type { AgentMetrics } from './metrics.js';
import type { Outbox } from './outbox.js';
import { refuseHello } from './hello-check.js';
import { answerTriage } from './triage.js';
import { sendableTables } from './send-tables.js';
import { ConflictLog } from './conflict-log.js';
import { databaseReportPacer, type ReportPacer } from './report-pacer.js';
import { SnapshotReceiver, type SnapshotProgress } from './snapshot.js';
import { TokenRefresher } from './token-refresher.js';
import { TokenSource } from './token-source.js';
import { TokenError, trustedCas, type TokenGrant } from './token.js';
import { WakeFlag } from './wake.js';

export interface HubClientDeps {
  readonly config: AgentConfig;
  readonly pool: pg.Pool;
  readonly engine: ApplyEngine;
  readonly outbox: Outbox;
  readonly logger: Logger;
  readonly metrics: AgentMetrics;
  readonly random?: () => number;
}

/** Inbound frames above this size are refused by ws before they are buffered whole. */
const MAX_INBOUND_BYTES = 256 * 1024 * 1024;
/** Before `hello` tells the heartbeat interval. */
const DEFAULT_HEARTBEAT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
/** What a connection ended with, and what to do next. */
type ConnectionOutcome = CloseAction & { newToken?: boolean; retryAfterMs?: number };

/** Most log entries applied in one transaction when queued deliveries are applied together. */
const MAX_COALESCED_ENTRIES = 2000;
const CONTENDED_LINGER_MS = 250;

export class HubClient {
  private readonly endpoints: HubEndpoints;
  private readonly ca: (string | Buffer)[] | undefined;
  private readonly codec: Codec;
  private readonly random: () => number;
  private stopping = false;
  /** Consecutive connections that ended before or without a greeting. */
  private failures = 0;
  /** When the hub last closed with "restarting" (1001/1012) and no connection succeeded since. */
  private restartAnnouncedAt: number | undefined;
  private readonly tokens: TokenSource;
  private conn: Connection | undefined;
  private wakeSleep: (() => void) | undefined;
  private running: Promise<void> | undefined;
  /** @internal shared by the connections */
  readonly wakeFlag: WakeFlag;
  /** @internal connections in a row that stopped at a schema change this branch cannot apply */
  schemaBlocks = 0;
  /** @internal shared by the connections, so its summary spans reconnects */
  readonly conflictLog: ConflictLog;

  constructor(private readonly deps: HubClientDeps) {
    this.wakeFlag = new WakeFlag(deps.pool);
    this.conflictLog = new ConflictLog(deps.logger);
    const c = deps.config;
    this.endpoints = hubEndpoints(c.hubUrl, c.allowInsecure);
    this.ca = trustedCas(c.caFile);
    this.tokens = new TokenSource(
      { url: this.endpoints.tokenUrl, tenantId: c.tenantId, branchId: c.branchId, apiKey: c.apiKey, ...(this.ca ? { ca: this.ca } : {}) },
      deps.metrics.tokenRequests,
    );
    this.codec = c.codec === 'json' ? jsonCodec : msgpackCodec;
    this.random = deps.random ?? Math.random;
  }

  /** Connects, and reconnects until `stop()`. Resolves once stopped. */
  start(): Promise<void> {
    this.running ??= this.loop();
    return this.running;
  }

  /** New local changes are waiting (NOTIFY or poll). */
  wake(): void {
    this.conn?.pump();
  }

  get connected(): boolean {
    return this.conn?.greeted === true;
  }

  /** Finishes the apply in progress, closes the socket with 1000, and stops reconnecting. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wakeSleep?.();
    await this.conn?.shutdown();
    await this.running;
  }

  private async loop(): Promise<void> {
    const log = this.deps.logger;
    while (!this.stopping) {
      let action: ConnectionOutcome;
      try {
        action = await this.connectOnce();
      } catch (err) {
        log.error({ err }, 'connection attempt failed');
        action = { kind: 'reconnect', reason: (err as Error).message };
      }
      if (this.stopping) break;
      if (action.newToken) this.tokens.forget();
      if (action.kind === 'reconnect-now' && action.restart) this.restartAnnouncedAt = Date.now();
      const sinceRestart = this.restartAnnouncedAt === undefined ? undefined : Date.now() - this.restartAnnouncedAt;
      const delay = Math.max(reconnectDelay(action, this.failures, this.random, sinceRestart), action.retryAfterMs ?? 0);
      this.failures++;
      log.info({ reason: action.reason, delayMs: delay }, 'reconnecting');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delay);
        this.wakeSleep = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wakeSleep = undefined;
    }
  }

  /** @internal used by the connection for `auth.refresh` */
  fetchToken(): Promise<TokenGrant> {
    return this.tokens.fetch();
  }

  /** One connection, from token to close. Resolves with what to do next. */
  private async connectOnce(): Promise<ConnectionOutcome> {
    const { logger: log, metrics } = this.deps;
    let grant: TokenGrant;
    try {
      grant = await this.tokens.current();
    } catch (err) {
      metrics.connects.inc({ result: 'token_failed' });
      if (err instanceof TokenError) {
        if (err.kind === 'unauthorized' || err.kind === 'bad_request') {
          log.error({ kind: err.kind }, `${err.message}: check TENANT_ID, BRANCH_ID and the API key`);
          return { kind: 'reconnect-later', reason: err.message };
        }
        return { kind: 'reconnect', reason: err.message, ...(err.retryAfterMs ? { retryAfterMs: err.retryAfterMs } : {}) };
      }
      throw err;
    }
    // stop() came while the token was on its way: there is no connection for it to shut down.
    if (this.stopping) return { kind: 'reconnect', reason: 'stopping' };
    const ws = new WebSocket(this.endpoints.wsUrl, [this.codec.subprotocol], {
      headers: { authorization: `Bearer ${grant.token}` },
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      perMessageDeflate: this.deps.config.compression === 'permessage-deflate',
      maxPayload: MAX_INBOUND_BYTES,
      ...(this.ca ? { ca: this.ca } : {}),
    });
    const conn = new Connection(ws, this, this.deps, grant);
    this.conn = conn;
    try {
      const outcome = await conn.closed;
      if (conn.greeted) {
        this.failures = 0;
        this.restartAnnouncedAt = undefined;
      }
      return outcome;
    } finally {
      this.conn = undefined;
    }
  }

  /** @internal the connection took a refreshed token into use */
  tokenRefreshed(g: TokenGrant): void {
    this.tokens.use(g);
  }
}

/** One socket's state: greeting, in-flight batches, the ordered inbound queue, timers. */
class Connection {
  greeted = false;
  readonly closed: Promise<ConnectionOutcome>;
  private resolveClosed!: (a: ConnectionOutcome) => void;
  private codec: Codec;
  private hello: Hello | undefined;
  private readonly inflight = new InFlight();
  private inbound: Promise<void> = Promise.resolve();
  /** Deliveries queued behind the apply in progress, to be applied together. */
  private waitingDeliveries: { frames: SyncDeliver[]; entries: number } | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private pumping = false;
  private pumpAgain = false;
  private batchCap: number;
  private messageSeq = 0;
  private readonly snapshot: SnapshotReceiver;
  private snapshotRequested = false;
  private lastProgressLog = 0;
  private shuttingDown = false;
  private closing: ConnectionOutcome | undefined;
  private blockedLoggedAt = 0;
  private readonly reports: ReportPacer;
  private readonly refresher: TokenRefresher;

  constructor(
    private readonly ws: WebSocket,
    private readonly client: HubClient,
    private readonly deps: HubClientDeps,
    grant: TokenGrant,
  ) {
    this.closed = new Promise((r) => (this.resolveClosed = r));
    this.codec = jsonCodec;
    this.batchCap = deps.config.batchSize;
    this.snapshot = new SnapshotReceiver(deps.engine, (p) => this.onProgress(p));
    this.refresher = new TokenRefresher(grant, {
      fetch: () => client.fetchToken(),
      send: (token) => this.send({ type: 'auth.refresh', id: this.nextId('t'), token }),
      adopted: (g) => client.tokenRefreshed(g),
      log: deps.logger,
    });
    this.reports = databaseReportPacer(deps.pool, deps.config.branchId, {
      send: (r) => {
        if (!this.send({ type: 'conflict.report', id: this.nextId('c'), conflict: r.conflict })) return false;
        deps.metrics.conflictsReported.inc({ kind: r.conflict.kind ?? 'concurrent' });
        return true;
      },
      onError: (err) => deps.logger.warn({ err }, 'sending conflict reports failed; they are sent later'),
    });
    ws.on('open', () => this.onOpen());
    ws.on('message', (data) => this.onMessage(data as Buffer));
    ws.on('ping', () => this.arm());
    ws.on('pong', () => this.arm());
    ws.on('unexpected-response', (_req, res) => this.onRefused(res.statusCode ?? 0));
    ws.on('error', (err) => deps.logger.warn({ err: err.message }, 'socket error'));
    ws.on('close', (code, reason) => this.onClose(code, reason.toString('utf8')));
  }

  private get log(): Logger {
    return this.deps.logger;
  }

  private nextId(prefix: string): string {
    return `${prefix}${++this.messageSeq}`;
  }

  private send(frame: AgentToHub): boolean {
    return this.sendEncoded(this.codec.encode(frame));
  }

  /** A frame encoded already (a batch is encoded once: to measure it, then to send it). */
  private sendEncoded(data: string | Uint8Array): boolean {
    if (this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(data, { binary: this.codec.binary });
    return true;
  }

  // ------------------------------------------------------------------ lifecycle

  private onOpen(): void {
    const negotiated = codecForSubprotocol(this.ws.protocol);
    if (!negotiated) {
      this.log.error({ protocol: this.ws.protocol }, 'the hub chose a subprotocol this agent does not speak');
      this.close(1002, 'unsupported subprotocol', { kind: 'reconnect-later', reason: 'unsupported subprotocol' });
      return;
    }
    this.codec = negotiated;
    this.deps.metrics.connects.inc({ result: 'open' });
    this.arm(DEFAULT_HEARTBEAT_MS);
  }

  /** The upgrade was answered with an HTTP status instead of a socket. */
  private onRefused(status: number): void {
    this.deps.metrics.connects.inc({ result: `http_${status}` });
    this.log.warn({ status }, 'the hub refused the WebSocket upgrade');
    const action: ConnectionOutcome =
      status === 401
        ? { kind: 'reconnect-now', reason: 'token refused (401)', newToken: true }
        : status === 403
          ? { kind: 'reconnect-later', reason: 'forbidden (403)', newToken: true }
          : { kind: 'reconnect', reason: `upgrade refused (${status})` };
    this.closing = action;
    this.ws.terminate();
  }

  private onClose(code: number, reason: string): void {
    for (const t of [this.watchdog, this.retryTimer]) if (t) clearTimeout(t);
    this.refresher.stop();
    this.reports.stop();
    this.deps.metrics.closes.inc({ code: String(code) });
    this.deps.metrics.connected.set(0);
    if (this.snapshot.inProgress) {
      this.log.warn('connection lost during a snapshot; it starts over on the next connection');
      this.snapshot.abandon();
    }
    this.inflight.clear();
    // Nobody sends until the next connection: writers need not NOTIFY meanwhile.
    void this.client.wakeFlag.set(false).catch(() => this.client.wakeFlag.reset());
    const action = this.closing ?? closeAction(code);
    if (this.greeted) this.log.info({ code, reason }, 'disconnected from the hub');
    // The inbound queue may still be applying: report closed only once it is done.
    void this.inbound.then(() => this.resolveClosed(action));
  }

  private close(code: number, reason: string, action?: ConnectionOutcome): void {
    if (action) this.closing = action;
    if (this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
    else this.ws.close(code, reason);
  }

  /** Graceful stop: let the apply in progress finish, then close 1000. */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    await this.inbound;
    this.close(1000, 'agent shutting down', { kind: 'reconnect', reason: 'stopping' });
    const t = setTimeout(() => this.ws.terminate(), STOP_TIMEOUT_MS);
    await this.closed;
    clearTimeout(t);
  }

  /** Heartbeat watchdog: the hub pings; silence for too long means the socket is dead. */
  private arm(ms?: number): void {
    const after = ms ?? deadAfter(this.hello?.heartbeat_ms ?? DEFAULT_HEARTBEAT_MS);
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => {
      this.log.warn({ afterMs: after }, 'no heartbeat from the hub; dropping the socket');
      this.ws.terminate();
    }, after);
    this.watchdog.unref();
  }

  // ------------------------------------------------------------------ inbound

  private onMessage(data: Buffer): void {
    this.arm();
    const decoded = decodeFrame(this.codec, data);
    const parsed = decoded.ok ? parseHubFrame(decoded.value) : decoded;
    if (!parsed.ok) {
      this.log.warn({ code: parsed.error.code, message: parsed.error.message }, 'invalid frame from the hub');
      this.send({ type: 'error', id: this.nextId('e'), code: parsed.error.code, message: parsed.error.message.slice(0, 1024) });
      return;
    }
    const f = parsed.value;
    switch (f.type) {
      // Order-independent frames are handled at once, so acks are not stuck behind an apply.
      case 'sync.ack':
        void this.onAck(f);
        return;
      case 'auth.refreshed':
        this.refresher.refreshed(f.expires_at);
        return;
      case 'conflict.notify':
        this.onConflictNotify(f);
        return;
      case 'triage.request':
        // A person's action on a dead letter or conflict, asked through the hub's admin API.
        void answerTriage(this.deps.pool, f, this.deps.config.maxForwardSkewMs).then((r) => this.send(r));
        return;
      case 'error':
        this.onError(f);
        return;
      default:
        this.enqueue(f);
    }
  }

  /** Frames whose effects must happen in order (greeting, deliveries, snapshots). */
  private enqueue(f: HubToAgent): void {
    if (f.type === 'sync.deliver') {
      // Deliveries that queue up while one is applied are applied together, in one transaction:
      // a busy tenant sends many small ones (one per batch it received), and one transaction
      // per handful of rows capped a branch far below what it can apply.
      const group = this.waitingDeliveries;
      if (group && group.entries + f.entries.length <= MAX_COALESCED_ENTRIES) {
        group.frames.push(f);
        group.entries += f.entries.length;
        return;
      }
      const next = { frames: [f], entries: f.entries.length };
      this.waitingDeliveries = next;
      this.chain(f.type, async () => {
        // While local writers contend for the rows being applied, wait a little so more
        // deliveries join this one: each apply transaction holds the hot rows for a moment.
        if (this.deps.engine.contended) await new Promise((r) => setTimeout(r, CONTENDED_LINGER_MS));
        if (this.waitingDeliveries === next) this.waitingDeliveries = undefined;
        await this.onDeliver(next.frames);
      });
      return;
    }
    // Anything else keeps its place: deliveries after it form a new group.
    this.waitingDeliveries = undefined;
    this.chain(f.type, () => this.handle(f));
  }

  private chain(type: HubToAgent['type'], fn: () => Promise<void>): void {
    this.inbound = this.inbound
      .then(async () => {
        // Not after the socket closed or while stopping: the hub delivers it again from the cursor.
        if (this.ws.readyState !== WebSocket.OPEN || this.shuttingDown) return;
        await fn();
      })
      .catch((err: unknown) => {
        if (err instanceof SchemaBlocked) return this.onSchemaBlocked(err);
        this.log.error({ err, type }, 'handling a frame failed; reconnecting to resume from the cursor');
        this.close(1011, 'agent error', { kind: 'reconnect', reason: `${type} failed` });
      });
  }

  private async handle(f: HubToAgent): Promise<void> {
    switch (f.type) {
      case 'hello':
        return this.onHello(f);
      case 'sync.deliver':
        return this.onDeliver([f]);
      case 'snapshot.begin':
        this.snapshotRequested = false;
        this.log.info({ snapshot: f.snapshot_id, offset: f.offset, rows: f.total_rows }, 'snapshot started');
        this.snapshot.begin(f);
        return;
      case 'snapshot.chunk': {
        const t0 = performance.now();
        const r = await this.snapshot.chunk(f);
        if (r) this.account(r, t0);
        this.send({ type: 'snapshot.ack', id: this.nextId('k'), snapshot_id: f.snapshot_id, seq: f.seq });
        if (r) await this.reports.offer(r.reports);
        return;
      }
      case 'snapshot.end': {
        const offset = await this.snapshot.end(f);
        this.deps.metrics.cursor.set(offset);
        this.send({ type: 'sync.applied', id: this.nextId('p'), offset });
        this.log.info({ snapshot: f.snapshot_id, offset, rows: f.rows }, 'snapshot applied; syncing from its offset');
        return;
      }
      case 'snapshot.required':
        this.log.warn({ reason: f.reason }, 'the hub asks this branch to bootstrap again');
        this.requestSnapshot();
        return;
      default:
        return;
    }
  }

  private async onHello(h: Hello): Promise<void> {
    const refusal = refuseHello(h, this.deps.config, this.deps.engine.tables);
    if (refusal) {
      this.log.error(refusal.details, refusal.message);
      this.deps.metrics.connects.inc({ result: refusal.reason.replaceAll(' ', '_') });
      this.close(refusal.code, refusal.reason, { kind: 'reconnect-later', reason: refusal.reason });
      return;
    }
    this.hello = h;
    this.arm();
    await this.deps.engine.setPolicy(h.policy);
    this.deps.outbox.sendable = sendableTables(h.send_tables);
    this.refresher.expiresAt(h.token_expires_at);
    this.send(catalogReport(this.nextId('k'), this.deps.engine.tables));
    const { cursor, bootstrapped } = await this.deps.engine.position();
    this.deps.metrics.cursor.set(cursor);
    this.send({ type: 'sync.applied', id: this.nextId('p'), offset: cursor });
    if (h.bootstrap) {
      this.log.info({ cursor, logHead: h.log_head }, 'the hub says this branch must bootstrap from a snapshot');
      this.requestSnapshot();
    } else if (!bootstrapped) {
      // Following the log from the cursor is enough: nothing this branch needs has been pruned.
      await this.deps.engine.markBootstrapped();
    }
    this.greeted = true;
    this.deps.metrics.connected.set(1);
    this.deps.metrics.connects.inc({ result: 'greeted' });
    this.log.info({ server: h.server_id, cursor, logHead: h.log_head, strategy: h.policy.conflict_strategy }, 'connected to the hub');
    await this.reports.drain();
    this.pump();
  }

  private async onDeliver(frames: readonly SyncDeliver[]): Promise<void> {
    const t0 = performance.now();
    const r = await this.deps.engine.deliver(frames.length === 1 ? (frames[0] as SyncDeliver).entries : frames.flatMap((d) => d.entries));
    this.account(r, t0);
    this.deps.metrics.cursor.set(r.cursor);
    this.send({ type: 'sync.applied', id: this.nextId('p'), offset: r.cursor });
    await this.reports.offer(r.reports);
  }

  /**
   * The stream stops at a schema change this branch cannot apply (agent/schema/apply.ts): what
   * came before it is applied, nothing after. Reconnecting delivers again from the cursor, which
   * tries the change again, less often the longer it fails.
   */
  private onSchemaBlocked(err: SchemaBlocked): void {
    const retryAfterMs = schemaRetryDelay(this.client.schemaBlocks++);
    this.log.error(
      { version: err.version, offset: err.offset, reason: err.reason, retryInMs: retryAfterMs },
      `the stream stops at schema change ${err.version}: ${err.reason}; fix the difference in this database, it is tried again (see docs/operations.md "A schema change that fails")`,
    );
    this.close(1000, 'schema change blocked', { kind: 'reconnect', reason: `schema change ${err.version} blocked`, retryAfterMs });
  }

  private account(r: ApplyResult, t0: number): void {
    if (r.schemaChanges) {
      this.client.schemaBlocks = 0;
      // The tables changed: the hub checks route filters against what is installed now.
      this.send(catalogReport(this.nextId('k'), this.deps.engine.tables));
    }
    this.deps.metrics.recordApply(r, (performance.now() - t0) / 1000);
    if (r.deadLetters) this.log.warn({ count: r.deadLetters }, 'changes could not be applied; see hubsync.dead_letter');
  }

  private requestSnapshot(): void {
    if (this.snapshot.inProgress || this.snapshotRequested) return;
    this.snapshotRequested = true;
    this.send({ type: 'snapshot.request', id: this.nextId('s') });
  }

  private onProgress(p: SnapshotProgress): void {
    this.deps.metrics.snapshotPercent.set(p.percent);
    const now = Date.now();
    if (p.done || now - this.lastProgressLog > 5000) {
      this.lastProgressLog = now;
      this.log.info({ snapshot: p.snapshotId, rows: p.rows, total: p.total, percent: p.percent }, 'snapshot progress');
    }
  }

  private onConflictNotify(n: ConflictNotify): void {
    this.deps.metrics.conflictNotifications.inc();
    this.client.conflictLog.lost(n);
  }

  private onError(e: ErrorFrame): void {
    this.deps.metrics.hubErrors.inc({ code: e.code });
    this.log.warn({ code: e.code, message: e.message, ref: e.ref }, 'error from the hub');
    if (e.code === 'snapshot_unavailable') {
      this.snapshotRequested = false;
      this.snapshot.abandon();
      this.later(() => this.requestSnapshot(), 5000 + Math.floor(Math.random() * 25_000));
      return;
    }
    const refused = e.ref === undefined ? undefined : this.inflight.refuse(e.ref);
    if (refused) {
      // The rows stay in the outbox; send them again a little later.
      this.later(() => this.pump(), e.code === 'rate_limited' ? 1000 + Math.floor(Math.random() * 2000) : 5000);
    }
  }

  private later(fn: () => void, ms: number): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(fn, ms);
    this.retryTimer.unref();
  }

  // ------------------------------------------------------------------ outbound: the outbox

  /** Sends outbox batches while the window has room. Safe to call at any time, any number of times. */
  pump(): void {
    if (!this.greeted || this.shuttingDown) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    void this.fill()
      .catch((err: unknown) => {
        this.client.wakeFlag.reset();
        this.log.warn({ err }, 'reading the outbox failed; retrying at the next poll');
      })
      .finally(() => {
        this.pumping = false;
        if (this.pumpAgain) {
          this.pumpAgain = false;
          this.pump();
        }
      });
  }

  private async fill(): Promise<void> {
    const { outbox, config, metrics } = this.deps;
    const limits = this.hello?.limits;
    if (!limits) return;
    const wake = this.client.wakeFlag;
    while (this.ws.readyState === WebSocket.OPEN && !this.shuttingDown && this.inflight.size < config.maxInFlightBatches) {
      const maxPerBatch = Math.min(limits.max_changes_per_batch, this.batchCap < config.batchSize ? this.batchCap : Infinity);
      const read = () => outbox.next({ batchSize: this.batchCap, maxPerBatch, exclude: this.inflight.seqs() });
      let batch = await read();
      if (!batch) {
        // Nothing to send: ask writers to NOTIFY, then look once more for a write that came in
        // before they could see the flag.
        await wake.set(true);
        batch = await read();
        if (!batch) break;
      }
      await wake.set(false);
      // A batch that took all there was waits while another is in flight (as Nagle's rule does
      // for small segments): the ack comes in milliseconds, and what was captured meanwhile goes
      // with it. Only batches the batch size cut are pipelined, so a steady trickle of writes
      // costs one append, one delivery and one apply per ack instead of one per write.
      if (this.inflight.size > 0 && !batch.more) break;
      const id = this.nextId('b');
      const batchId = `${config.branchId}-${process.pid}-${Date.now().toString(36)}-${id}`;
      const data = this.codec.encode({ type: 'sync.batch', id, batch_id: batchId, changes: [...batch.changes] });
      const size = typeof data === 'string' ? Buffer.byteLength(data) : data.length;
      if (size > limits.max_frame_bytes) {
        if (batch.changes.length === 1) {
          metrics.sendBlocked.set(1);
          if (Date.now() - this.blockedLoggedAt > 60_000) {
            this.blockedLoggedAt = Date.now();
            this.log.error(
              { table: batch.changes[0]?.table, seq: batch.changes[0]?.seq, bytes: size, limit: limits.max_frame_bytes },
              'a single change is larger than the hub accepts in one frame; sending is blocked until the hub limit is raised',
            );
          }
          return;
        }
        this.batchCap = nextBatchCap(Math.min(this.batchCap, batch.changes.length), config.batchSize, 'too_large');
        continue;
      }
      metrics.sendBlocked.set(0);
      if (!this.sendEncoded(data)) break;
      this.inflight.add({ batchId, messageId: id, seqs: batch.seqs, sentAt: Date.now() });
      metrics.batchesSent.inc();
      metrics.changesSent.inc(batch.changes.length);
      this.batchCap = nextBatchCap(this.batchCap, config.batchSize, 'fit');
    }
  }

  private async onAck(a: SyncAck): Promise<void> {
    const r = this.inflight.ack(a.batch_id, a.offsets);
    if (!r.ok) {
      this.log.warn({ batch: a.batch_id, reason: r.reason }, 'unexpected sync.ack');
      return;
    }
    try {
      await this.deps.outbox.acknowledge(r.batch.seqs);
      this.deps.metrics.changesAcked.inc(r.batch.seqs.length);
      this.inflight.settle(a.batch_id);
    } catch (err) {
      // Not deleted: forget the batch so its rows are read and sent again (the hub answers a
      // resend with the offsets it already gave them, and they are deleted then). Keeping them
      // excluded instead left them in the outbox for as long as this connection lasted.
      this.log.warn({ err }, 'could not drop acknowledged changes from the outbox; sending them again');
      this.inflight.settle(a.batch_id);
    }
    this.pump();
  }
}
