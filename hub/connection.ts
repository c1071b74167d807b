/**
 * One branch's WebSocket session, from hello to close. Per frame: validate, authorize (rate
 * limits, routing), append, acknowledge, notify. Frames of a connection are handled one at a
 * time, in order, so a branch's batches are appended in the order it sent them; a client that
 * sends faster than that is read no faster (the socket is paused).
 */
import type { WebSocket } from 'ws';
import {
  decodeFrame,
  parseAgentFrame,
  PROTOCOL_VERSION,
  type AgentToHub,
  type CatalogReport,
  type Change,
  type Codec,
  type ConflictReport,
  type HubToAgent,
  type LogEntry,
  type SyncBatch,
} from '../protocol/index.js';
import type { HubContext } from './context.js';
import { Delivery, type SharedDeliver } from './delivery.js';
import type { EntriesMessage } from './engine/types.js';
import { Directory, type TenantView } from './directory.js';
import { CLOSE, CLOSE_REASON, fromProtocolError, HubError, safeMessage, type CloseCode } from './errors.js';
import * as log from './log.js';
import { takeAll, type BucketState } from './rate-limit.js';
import type { ConnectionInfo, HubConnection } from './registry.js';
import { admit } from './admission.js';
import { recordCatalog, relayConflict, sendHeldNotices } from './branch-reports.js';
import { verifyRefresh } from './auth/refresh.js';
import { entriesFor } from './routes/entries.js';
import type { RoutingPolicy } from './routes/policy.js';
import { resyncOf, routingAtConnect, routingKey, type Resync } from './routes/resync.js';
import type { RoutingSynced } from './routes/route.js';
import { SnapshotSession } from './snapshot.js';
import { CursorWriter } from './cursor-writer.js';
import { wsFailure } from './ws-errors.js';

export interface Session {
  readonly tenantId: string;
  readonly branchId: string;
  /** Token expiry, seconds since the epoch. */
  readonly exp: number;
  readonly codec: Codec;
  readonly remoteAddress: string;
}

/** Frames waiting to be handled before the socket stops being read. */
const MAX_QUEUED_FRAMES = 32;
/** Consecutive batches appended in one transaction (group commit), and their most changes. */
const GROUP_BATCHES = 16;
const GROUP_CHANGES = 5000;
/** Least time between two cursor writes of one connection (hub/cursor-writer.ts). */
const CURSOR_WRITE_INTERVAL_MS = 100;
/** Least time between cursor writes of a connection that was sent nothing (hub/cursor-writer.ts). */
const LAZY_CURSOR_WRITE_INTERVAL_MS = 5000;
/** Announcements of appended groups not yet done before the next append waits for them (see announce). */
const MAX_ANNOUNCING = 4;

type Parsed = { readonly frame: AgentToHub } | { readonly error: HubError; readonly ref: string | undefined };
type ParsedBatch = { readonly frame: SyncBatch };

function isBatch(p: Parsed | undefined): p is ParsedBatch {
  return p !== undefined && 'frame' in p && p.frame.type === 'sync.batch';
}

/** What a snapshot for `branch` holds and evicts: a resync's plan, or the routes (absent: everything). */
function snapshotRouting(routing: RoutingPolicy | null, branch: string, resync: Resync | null): { holds?: (v: Change) => boolean; evicts?: Resync['evicts'] } {
  if (resync) return resync;
  return routing ? { holds: (v) => routing.holds(branch, v) } : {};
}

export class Connection implements HubConnection {
  readonly tenantId: string;
  readonly branchId: string;
  readonly connectedAt = new Date();
  readonly remoteAddress: string;
  readonly delivery: Delivery;
  gen = 0;
  /** Cleared by each heartbeat, set by each pong. */
  alive = true;
  closed = false;
  /** The code this side closed with, if it sent a close frame. */
  private closeSent: CloseCode | undefined;
  private wsCloseCode: number | undefined;
  /** Hello is out: frames other than hello may follow. */
  private greeted = false;
  /** A conflict notice was held for this branch while it was being greeted. */
  private noticesHeldMeanwhile = false;
  private readonly codec: Codec;
  private exp: number;
  private expiryTimer: NodeJS.Timeout | undefined;
  /** Frames received, parsed, not yet handled; handled one (or one group of batches) at a time. */
  private readonly queue: Parsed[] = [];
  private working = false;
  private violations: BucketState | undefined;
  private view: TenantView | null = null;
  private snapshot: SnapshotSession | undefined;
  private readonly cursor: CursorWriter;
  /** The routing this connection was greeted under (hub/routes/resync.ts), to notice when it changes. */
  private routingKey: string | undefined;
  /** Set when the branch's rows must be brought in line with its routing by the next snapshot. */
  private resync: { readonly plan: Resync | null; readonly now: RoutingSynced; readonly changed: boolean } | undefined;
  private framesSeq = 0;
  /** This connection's announcements of its appends, chained so receivers are told in append order. */
  private announced: Promise<void> = Promise.resolve();
  private announcing = 0;
  /** Counted in the active-connections gauge (and holding a location claim). */
  private counted = false;

  constructor(
    private readonly ctx: HubContext,
    private readonly ws: WebSocket,
    session: Session,
  ) {
    this.tenantId = session.tenantId;
    this.branchId = session.branchId;
    this.remoteAddress = session.remoteAddress;
    this.codec = session.codec;
    this.exp = session.exp;
    const c = ctx.config;
    this.cursor = new CursorWriter(
      {
        write: (pos) => (this.view ? log.setCursor(ctx.pool, this.view.schema, this.branchId, pos).then(() => undefined) : Promise.resolve()),
        failed: (err) => ctx.logger.warn({ err, tenant: this.tenantId, branch: this.branchId }, 'cursor write failed'),
      },
      CURSOR_WRITE_INTERVAL_MS,
      0,
      LAZY_CURSOR_WRITE_INTERVAL_MS,
    );
    this.delivery = new Delivery(
      {
        branchId: this.branchId,
        buffered: () => this.ws.bufferedAmount,
        deliver: (entries, shared, at) => this.deliver(entries, shared, at),
        snapshotRequired: (reason) => this.send({ type: 'snapshot.required', id: this.nextId('r'), reason }),
        readPage: (from) => this.readPage(from),
        moveCursor: (pos, lazy) => this.cursor.move(pos, lazy),
        closeSlow: () => {
          ctx.metrics.slowConsumers.inc({ action: 'closed' });
          this.close(CLOSE.slowConsumer);
        },
        paused: () => ctx.metrics.slowConsumers.inc({ action: 'paused' }),
        error: (err) => ctx.logger.warn({ err, tenant: this.tenantId, branch: this.branchId }, 'reading the log failed; retrying'),
      },
      { pauseBytes: c.sendPauseBytes, closeBytes: c.sendCloseBytes, maxUnapplied: c.maxUnappliedEntries, retryMs: 1000 },
    );
  }

  get codecName(): string {
    return this.codec.name;
  }

  info(): ConnectionInfo {
    return {
      tenantId: this.tenantId,
      branchId: this.branchId,
      instanceId: this.ctx.instanceId,
      connectedAt: this.connectedAt.toISOString(),
      remoteAddress: this.remoteAddress,
      codec: this.codec.name,
      mode: this.delivery.mode,
      scanned: this.delivery.scanned,
      applied: this.delivery.applied,
      delivered: this.delivery.deliveredUpto,
      bufferedBytes: this.ws.bufferedAmount,
      snapshot: this.snapshot ? { ...this.snapshot.progress, resync: this.resync !== undefined } : null,
    };
  }

  /** Claims the branch, says hello and starts delivery. Closes the socket when it cannot. */
  async open(): Promise<void> {
    const { ctx } = this;
    this.ws.on('message', (data) => this.onMessage(data as Buffer));
    this.ws.on('pong', () => {
      this.alive = true;
    });
    this.ws.on('close', (code) => this.onClose(code));
    this.ws.on('error', (err) => this.onSocketError(err));
    this.armExpiry();
    try {
      this.view = await ctx.directory.forConnect(this.tenantId, this.branchId);
      if (!Directory.allows(this.view, this.branchId)) {
        this.close(CLOSE.suspended);
        return;
      }
      const claim = await ctx.engine.claim(this.tenantId, this.branchId).catch((err: unknown) => {
        // Without the registry this branch only gets entries at each poll of the log head.
        ctx.logger.warn({ err }, 'could not claim the branch location');
        return { gen: 0, previous: null };
      });
      this.gen = claim.gen;
      if (this.closed) return;
      const replaced = ctx.registry.add(this);
      ctx.metrics.connectionsActive.inc({ tenant: this.tenantId });
      this.counted = true;
      if (replaced) replaced.close(CLOSE.replaced);
      if (claim.previous && claim.previous.server !== ctx.instanceId) {
        void ctx.fanout.kick(claim.previous.server, this.tenantId, this.branchId, claim.previous.gen);
      }
      const pos = await ctx.positions.add(this.view!.schema, this.branchId);
      if (this.closed) return;
      // Behind retention, or new to a tenant with history: the compacted state is the way in.
      const behind = pos.cursor < pos.prunedUpto || (pos.cursor === 0 && pos.head > 0);
      // Its routing changed since its rows were last in line: a snapshot with evictions brings them there.
      const routing = routingAtConnect(this.view!, this.branchId);
      this.routingKey = routingKey(this.view!, this.branchId);
      // Behind retention with rows here: what moved off it meanwhile is evicted too (a new branch holds nothing).
      const plan = routing.resync ?? (behind && pos.cursor > 0 && this.view!.routing ? resyncOf(this.view!, this.branchId, routing.now) : null);
      if (behind || plan) this.resync = { plan, now: routing.now, changed: routing.resync !== null };
      const bootstrap = this.resync !== undefined;
      this.cursor.reset(pos.cursor);
      const sendTables = this.view!.routing?.sendTables(this.branchId);
      this.send({
        type: 'hello',
        id: this.nextId('h'),
        protocol: PROTOCOL_VERSION,
        server_id: ctx.instanceId,
        tenant_id: this.tenantId,
        branch_id: this.branchId,
        heartbeat_ms: ctx.config.heartbeatMs,
        limits: { max_frame_bytes: ctx.config.maxFrameBytes, max_changes_per_batch: ctx.config.maxChangesPerBatch },
        cursor: pos.cursor,
        log_head: pos.head,
        bootstrap,
        policy: this.view!.policy,
        ...(sendTables === undefined ? {} : { send_tables: sendTables }),
        token_expires_at: new Date(this.exp * 1000).toISOString(),
      });
      this.delivery.start(pos.cursor, bootstrap, pos.head);
      this.greeted = true;
      if (pos.notices || this.noticesHeldMeanwhile) void this.sendHeldNotices(this.view!.schema);
      void ctx.lastSeen.add('', [this.tenantId, this.branchId]).catch(() => undefined);
    } catch (err) {
      ctx.logger.error({ err, tenant: this.tenantId, branch: this.branchId }, 'opening a connection failed');
      this.close(CLOSE.restart);
    }
  }

  /** The branch's rows follow `now`: recorded, so that its next connection needs no resync. */
  private async routingSynced(now: RoutingSynced, changed: boolean, evicted: number): Promise<void> {
    this.resync = undefined;
    if (changed) this.ctx.metrics.routingResyncs.inc({ tenant: this.tenantId }, 1);
    if (evicted > 0) this.ctx.metrics.routingEvictions.inc({ tenant: this.tenantId }, evicted);
    try {
      await this.ctx.store.markRoutingSynced(this.tenantId, this.branchId, now);
      // So that the next connection sees it: nothing notifies of this change.
      await this.ctx.directory.reload(this.tenantId);
    } catch (err) {
      this.ctx.logger.warn({ err, tenant: this.tenantId, branch: this.branchId }, 'could not record the routing a branch follows; it is resynced at its next connect');
    }
  }

  /** Encodes and sends one frame (closing the socket when its buffer passed the cap); false when it is closing or closed. */
  send(frame: HubToAgent): boolean {
    if (this.closed || this.ws.readyState !== this.ws.OPEN) return false;
    this.write(this.codec.encode(frame), frame.type);
    return true;
  }

  close(code: CloseCode): void {
    if (this.closed) return;
    this.closed = true;
    this.closeSent = code;
    this.delivery.stop();
    this.snapshot?.abort('connection closed');
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    try {
      this.ws.close(code, CLOSE_REASON[code]);
    } catch {
      this.ws.terminate();
    }
    // A peer that never answers the close handshake is cut off.
    setTimeout(() => this.ws.terminate(), 5000).unref();
  }

  /** Resolves once nothing of this connection waits to be written (checked every 20 ms). */
  async flushed(): Promise<void> {
    while (this.ws.bufferedAmount > 0 && this.ws.readyState !== this.ws.CLOSED) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Drops the socket without a close frame (dead peer, or a test's simulated crash). */
  terminate(): void {
    this.closed = true;
    this.delivery.stop();
    this.snapshot?.abort('connection terminated');
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.ws.terminate();
  }

  ping(): void {
    if (this.closed) return;
    this.alive = false;
    this.ws.ping();
  }

  /**
   * Re-checks status after a control notification or resync. When the routes changed what the
   * branch may send, it is asked to reconnect (1012), and its new hello says so.
   */
  enforce(view: TenantView | null): void {
    this.view = view ?? this.view;
    if (!Directory.allows(view, this.branchId)) {
      this.close(CLOSE.suspended);
      return;
    }
    if (this.greeted && view && routingKey(view, this.branchId) !== this.routingKey) this.close(CLOSE.restart);
  }

  /** Writes the latest cursor now (after any write in flight), for a graceful shutdown. */
  flushCursor(): Promise<void> {
    return this.cursor.flush();
  }

  // ------------------------------------------------------------------ inbound

  private onMessage(data: Buffer): void {
    if (this.closed || this.ctx.draining) return;
    // Decoding and validation are CPU work: done on arrival, so they overlap the database
    // round trips of the frame ahead; only the handling itself is kept in order.
    this.queue.push(this.parse(data));
    if (this.queue.length >= MAX_QUEUED_FRAMES) this.ws.pause();
    if (!this.working) void this.work();
  }

  /** Handles queued frames in order; consecutive batches go to the log in one transaction. */
  private async work(): Promise<void> {
    this.working = true;
    try {
      while (this.queue.length > 0 && !this.closed && !this.ctx.draining) {
        const first = this.queue.shift() as Parsed;
        if (isBatch(first)) {
          const group: ParsedBatch[] = [first];
          let changes = first.frame.changes.length;
          // Announcing lags far behind (a slow engine): wait, so that it cannot pile up.
          if (this.announcing >= MAX_ANNOUNCING) await this.announced;
          while (group.length < GROUP_BATCHES && isBatch(this.queue[0]) && changes + this.queue[0].frame.changes.length <= GROUP_CHANGES) {
            const next = this.queue.shift() as ParsedBatch;
            changes += next.frame.changes.length;
            group.push(next);
          }
          await this.ctx.inflight.run(() => this.onBatches(group.map((g) => g.frame))).catch((err: unknown) => {
            this.ctx.logger.error({ err, tenant: this.tenantId, branch: this.branchId }, 'batch failed');
            for (const g of group) this.fail(new HubError('internal', 'internal error; retry later'), g.frame.id);
          });
        } else {
          await this.ctx.inflight.run(() => this.handle(first));
        }
        if (this.ws.isPaused && this.queue.length < MAX_QUEUED_FRAMES / 2) this.ws.resume();
      }
    } finally {
      this.working = false;
    }
  }

  private parse(data: Buffer): Parsed {
    const decoded = decodeFrame(this.codec, data, this.ctx.config.maxFrameBytes);
    if (!decoded.ok) return { error: fromProtocolError(decoded.error), ref: undefined };
    const parsed = parseAgentFrame(decoded.value);
    if (!parsed.ok) {
      const raw = decoded.value as { id?: unknown } | null;
      const id = raw && typeof raw === 'object' && typeof raw.id === 'string' && raw.id.length <= 64 && raw.id !== '' ? raw.id : undefined;
      return { error: fromProtocolError(parsed.error), ref: id };
    }
    this.ctx.metrics.framesIn.inc({ type: parsed.value.type });
    return { frame: parsed.value };
  }

  private async handle(parsed: Parsed): Promise<void> {
    if (this.closed) return;
    if ('error' in parsed) return this.fail(parsed.error, parsed.ref);
    const { frame } = parsed;
    try {
      await this.dispatch(frame);
    } catch (err) {
      if (err instanceof HubError) return this.fail(err, frame.id);
      this.ctx.logger.error({ err, tenant: this.tenantId, branch: this.branchId, type: frame.type }, 'frame failed');
      this.fail(new HubError('internal', 'internal error; retry later'), frame.id);
    }
  }

  private async dispatch(frame: AgentToHub): Promise<void> {
    switch (frame.type) {
      case 'sync.batch':
        return this.onBatches([frame]);
      case 'sync.applied':
        this.delivery.onApplied(frame.offset);
        return;
      case 'conflict.report':
        return this.onConflict(frame);
      case 'snapshot.request':
        return this.onSnapshotRequest();
      case 'snapshot.ack':
        this.snapshot?.ack(frame.snapshot_id, frame.seq);
        return;
      case 'auth.refresh':
        return this.onRefresh(frame.token);
      case 'triage.result':
        return this.ctx.triage.onResult(this.tenantId, this.branchId, frame);
      case 'catalog.report':
        return this.onCatalog(frame);
      case 'error':
        this.ctx.logger.info({ tenant: this.tenantId, branch: this.branchId, code: frame.code, message: frame.message }, 'agent reported an error');
        return;
    }
  }

  /** The tenant as currently known; closes the socket (4003) when the branch may no longer sync. */
  private async currentView(): Promise<TenantView | null> {
    const view = await this.ctx.directory.get(this.tenantId);
    this.view = view ?? this.view;
    if (!Directory.allows(view, this.branchId)) {
      this.close(CLOSE.suspended);
      return null;
    }
    return view;
  }

  private async rateLimit(view: TenantView): Promise<boolean> {
    const r = await this.ctx.limiter.frame(this.tenantId, this.branchId, view.rate);
    if (r.allowed) return true;
    this.ctx.metrics.rateLimited.inc({ scope: r.scope ?? 'branch' });
    throw new HubError('rate_limited', `${r.scope ?? 'branch'} rate limit exceeded; retry in ${r.retryAfterMs} ms`);
  }

  /**
   * Batches received one after the other: each is rate-limited and admitted on its own (a
   * refusal answers that batch only), then the admitted ones are appended in one transaction,
   * acknowledged in order and announced.
   */
  private async onBatches(batches: readonly SyncBatch[]): Promise<void> {
    const { ctx } = this;
    const view = await this.currentView();
    if (!view) return;
    const admitted: { batch: SyncBatch; target: string | null }[] = [];
    for (const batch of batches) {
      try {
        await this.rateLimit(view);
        admitted.push({ batch, target: await admit(ctx, this, batch, view) });
      } catch (err) {
        if (!(err instanceof HubError)) throw err;
        this.fail(err, batch.id);
      }
    }
    if (admitted.length === 0) return;
    const started = performance.now();
    let results: log.AppendResult[];
    try {
      results = await log.appendMany(
        ctx.pool,
        this.tenantId,
        view.schema,
        this.branchId,
        admitted.map((a) => ({ changes: a.batch.changes, target: a.target })),
      );
    } catch (err) {
      ctx.logger.error({ err, tenant: this.tenantId, branch: this.branchId }, 'append failed');
      for (const a of admitted) this.fail(new HubError('internal', 'append failed; resend later'), a.batch.id);
      return;
    }
    ctx.metrics.appendSeconds.observe((performance.now() - started) / 1000);
    const at = Date.now();
    const announcements: EntriesMessage[] = [];
    for (let i = 0; i < admitted.length; i++) {
      const { batch, target } = admitted[i] as { batch: SyncBatch; target: string | null };
      const result = results[i] as log.AppendResult;
      if (result.added.length > 0) ctx.metrics.changesIn.inc({ tenant: this.tenantId }, result.added.length);
      if (result.duplicates > 0) ctx.metrics.duplicates.inc({ tenant: this.tenantId }, result.duplicates);
      this.send({ type: 'sync.ack', id: this.nextId('a'), batch_id: batch.batch_id, offsets: result.offsets });
      if (!result.range) continue;
      announcements.push({
        kind: 'entries',
        tenant: this.tenantId,
        first: result.range.first,
        last: result.range.last,
        origin: this.branchId,
        target,
        at,
        entries: result.added,
      });
    }
    if (announcements.length > 0) this.announce(announcements);
  }

  /**
   * Tells the receivers about appended entries, after this turn of the event loop: by then the
   * next group's append is on its way to the database, so encoding and sending these deliveries
   * (the hub's largest cost per change) overlaps it instead of delaying it. Chained, so a
   * connection's announcements keep their append order; tracked as in flight, so a graceful
   * shutdown waits for them.
   */
  private announce(msgs: readonly EntriesMessage[]): void {
    const { ctx } = this;
    this.announcing++;
    this.announced = this.announced
      .then(() => new Promise<void>((resolve) => setImmediate(resolve)))
      .then(async () => {
        for (const m of msgs) await ctx.fanout.publish(m);
      })
      .catch((err: unknown) => ctx.logger.error({ err, tenant: this.tenantId, branch: this.branchId }, 'announcing appended entries failed'))
      .finally(() => {
        this.announcing--;
      });
    void ctx.inflight.run(() => this.announced);
  }

  private async onConflict(frame: ConflictReport): Promise<void> {
    const view = await this.currentView();
    if (!view) return;
    await this.rateLimit(view);
    await relayConflict(this.ctx, this, view, frame, this.nextId('c'));
  }

  private async onCatalog(frame: CatalogReport): Promise<void> {
    const view = await this.currentView();
    if (!view) return;
    await this.rateLimit(view);
    await recordCatalog(this.ctx, this, view, frame);
  }

  /**
   * A conflict notice was just held for this branch (it was not connected when the notice came,
   * or looked so): send what is held now, or right after hello if that is still to come, since
   * the read of held notices at connect may have missed it.
   */
  noticeHeld(): void {
    if (this.closed) return;
    if (!this.greeted) this.noticesHeldMeanwhile = true;
    else if (this.view) void this.sendHeldNotices(this.view.schema);
  }

  private sendHeldNotices(schema: string): Promise<void> {
    return sendHeldNotices(this.ctx, this, schema, (n) => this.send(n));
  }

  private async onSnapshotRequest(): Promise<void> {
    const view = await this.currentView();
    if (!view) return;
    if (this.snapshot) throw new HubError('snapshot_unavailable', 'a snapshot is already in progress');
    const session = new SnapshotSession();
    this.snapshot = session;
    this.delivery.beginSnapshot();
    const peer = {
      tenantId: this.tenantId,
      schema: view.schema,
      send: (f: HubToAgent) => this.send(f),
      isClosed: () => this.closed,
      ...snapshotRouting(view.routing, this.branchId, this.resync?.plan ?? null),
      cursor: this.delivery.applied,
    };
    const resync = this.resync;
    // Served in the background: acks arrive as frames, which must keep being handled meanwhile.
    void this.ctx.snapshots.serve(peer, session).then(
      (outcome) => {
        this.snapshot = undefined;
        this.ctx.metrics.snapshots.inc({ result: 'done' });
        this.delivery.endSnapshot(outcome.offset);
        if (resync) void this.routingSynced(resync.now, resync.changed, outcome.evicted);
      },
      (err: unknown) => {
        this.snapshot = undefined;
        this.ctx.metrics.snapshots.inc({ result: 'failed' });
        if (this.closed) return;
        const e = err instanceof HubError ? err : new HubError('snapshot_unavailable', 'snapshot failed; retry later');
        if (!(err instanceof HubError)) this.ctx.logger.error({ err }, 'snapshot failed');
        this.fail(e, undefined);
        this.delivery.abortSnapshot();
      },
    );
  }

  private async onRefresh(token: string): Promise<void> {
    const exp = await verifyRefresh(this.ctx, this, token);
    if (exp > this.exp) {
      this.exp = exp;
      this.armExpiry();
    }
    this.send({ type: 'auth.refreshed', id: this.nextId('t'), expires_at: new Date(this.exp * 1000).toISOString() });
  }

  // ------------------------------------------------------------------ errors and closing

  private fail(err: HubError, ref: string | undefined): void {
    const { ctx } = this;
    ctx.metrics.protocolErrors.inc({ code: err.code });
    this.send({ type: 'error', id: this.nextId('e'), code: err.code, message: safeMessage(err.message), ...(ref ? { ref } : {}) });
    if (!err.violation) return;
    const { result, states } = takeAll([this.violations], [{ perSecond: 1, burst: ctx.config.maxViolations }], Date.now());
    this.violations = states[0];
    if (!result.allowed) this.close(CLOSE.violations);
  }

  private onSocketError(err: Error & { code?: string }): void {
    // ws closes the socket itself (1009 for an oversized frame); count what happened.
    const failure = wsFailure(err);
    this.wsCloseCode ??= failure.closeCode;
    if (failure.tooLarge) this.ctx.metrics.limitViolations.inc({ limit: 'frame_size' });
    this.ctx.logger.debug({ err: err.message, tenant: this.tenantId, branch: this.branchId }, 'socket error');
  }

  private onClose(code: number): void {
    const { ctx } = this;
    ctx.registry.remove(this);
    this.closed = true;
    this.delivery.stop();
    this.snapshot?.abort('connection closed');
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    // Cut off after its close frame (ours, or one ws sent on a bad frame): closed with that code.
    ctx.metrics.connectionsClosed.inc({ code: String(code === 1006 ? (this.closeSent ?? this.wsCloseCode ?? code) : code) });
    if (this.counted) {
      // Also for a replaced connection, which is no longer in the registry.
      this.counted = false;
      ctx.metrics.connectionsActive.dec({ tenant: this.tenantId });
      // Removes the location only if it is still this connection's generation.
      void ctx.engine.release(this.tenantId, this.branchId, this.gen).catch(() => undefined);
      void ctx.lastSeen.add('', [this.tenantId, this.branchId]).catch(() => undefined);
    }
    void this.flushCursor();
  }

  private armExpiry(): void {
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    const ms = this.exp * 1000 - Date.now();
    this.expiryTimer = setTimeout(() => this.close(CLOSE.tokenExpired), Math.max(0, Math.min(ms, 2 ** 31 - 1)));
    this.expiryTimer.unref();
  }

  // ------------------------------------------------------------------ outbound

  private write(data: string | Buffer, type: string): void {
    this.ws.send(data, { binary: this.codec.binary });
    this.ctx.metrics.framesOut.inc({ type });
    if (this.ws.bufferedAmount > this.ctx.config.sendCloseBytes) {
      this.ctx.metrics.slowConsumers.inc({ action: 'closed' });
      this.close(CLOSE.slowConsumer);
    }
  }

  private deliver(entries: readonly LogEntry[], shared: SharedDeliver | null, at: readonly number[] | number): void {
    if (this.closed) return;
    const { metrics } = this.ctx;
    const first = (entries[0] as LogEntry)[0];
    let data = shared?.encoded.get(this.codec.name);
    if (data === undefined) {
      data = this.codec.encode({ type: 'sync.deliver', id: `d-${first}`, entries: entries as LogEntry[] });
      shared?.encoded.set(this.codec.name, data);
    }
    this.write(data, 'sync.deliver');
    metrics.changesOut.inc({ tenant: this.tenantId }, entries.length);
    const now = Date.now();
    if (typeof at === 'number') {
      metrics.deliverySeconds.observe({ path: 'live' }, Math.max(0, now - at) / 1000);
    } else {
      for (const t of at) metrics.deliverySeconds.observe({ path: 'log' }, Math.max(0, now - t) / 1000);
    }
  }

  /** A page of the log for this branch; with routes, only what they send it (evictions included). */
  private async readPage(from: number): Promise<log.Page> {
    const { config } = this.ctx;
    const view = this.view;
    if (!view) throw new Error('tenant unknown');
    const routing = view.routing;
    const page = await log.readPage(this.ctx.pool, view.schema, this.branchId, from, config.deliveryPageEntries, Math.floor(config.maxFrameBytes * 0.9), routing !== null);
    return page.kind === 'entries' && routing ? { ...page, rows: entriesFor(routing, this.branchId, page.rows) } : page;
  }

  private nextId(prefix: string): string {
    return `${prefix}-${++this.framesSeq}`;
  }
}
