/**
 * Moves notifications of new log entries to the connections that should see them: directly to
 * this instance's connections, and through the engine to instances holding other branches of
 * the tenant. A notification is only a wake-up; connections re-read the log when in doubt.
 */
import type { ConflictNotify, LogEntry } from '../protocol/index.js';
import { CLOSE } from './errors.js';
import type { Directory } from './directory.js';
import type { Engine, EntriesMessage, InstanceMessage, TriageMessage, TriageReplyMessage } from './engine/types.js';
import type { Logger } from './logger.js';
import { routeEntries } from './routes/entries.js';
import type { RoutingPolicy } from './routes/policy.js';
import type { ConnectionRegistry, HubConnection } from './registry.js';
import { serversToNotify } from './routing.js';
import type { SharedDeliver } from './delivery.js';

export class Fanout {
  /** Called with each pub/sub probe that comes back. */
  onProbe: (nonce: string) => void = () => undefined;
  /** A conflict notice sent here for a branch that is no longer connected here: hold it. */
  onUndeliveredConflict: (tenant: string, branch: string, frame: ConflictNotify) => void = () => undefined;
  /** Triage requests and answers between instances (hub/triage.ts). */
  onTriage: (m: TriageMessage | TriageReplyMessage) => void = () => undefined;

  constructor(
    private readonly instanceId: string,
    private readonly engine: Engine,
    private readonly registry: ConnectionRegistry<HubConnection>,
    private readonly directory: Directory,
    private readonly logger: Logger,
  ) {}

  /**
   * After an append committed: wake every connection that should receive the entries. With
   * routes, only instances holding a receiver get the entries; the others get the range alone,
   * so their connections move past it without reading the log.
   */
  async publish(msg: EntriesMessage): Promise<void> {
    const routing = this.routingOf(msg.tenant);
    const routed = routing && msg.entries ? routeEntries(routing, msg.entries, msg.target) : null;
    this.deliverLocal(msg, routed);
    if (this.engine.kind === 'memory') return;
    try {
      const locations = await this.engine.locate(msg.tenant);
      if (!routed) {
        const servers = serversToNotify(locations, msg.origin, msg.target, this.instanceId);
        await Promise.all(servers.map((s) => this.engine.send(s, msg)));
        return;
      }
      const receivers = [...routed.keys()];
      const holding = new Set<string>();
      const others = new Set<string>();
      for (const [branch, loc] of locations) {
        if (loc.server === this.instanceId) continue;
        (routed.has(branch) ? holding : others).add(loc.server);
      }
      const { entries: _entries, ...range } = msg;
      await Promise.all([
        ...[...holding].map((s) => this.engine.send(s, { ...msg, receivers })),
        ...[...others].filter((s) => !holding.has(s)).map((s) => this.engine.send(s, { ...range, receivers: [] })),
      ]);
    } catch (err) {
      // Remote branches then see the entries at their next poll of the log head.
      this.logger.warn({ err, tenant: msg.tenant }, 'could not notify other instances');
    }
  }

  /** A conflict notification for `branch`, wherever it is connected; false when it is not (the caller holds it). */
  async sendConflict(tenant: string, branch: string, frame: ConflictNotify): Promise<boolean> {
    const local = this.registry.get(tenant, branch);
    // A connection that is closing does not count: the notice is held for the next one.
    if (local?.send(frame)) return true;
    if (this.engine.kind === 'memory') return false;
    const loc = (await this.engine.locate(tenant)).get(branch);
    if (!loc || loc.server === this.instanceId) return false;
    await this.engine.send(loc.server, { kind: 'conflict', tenant, branch, frame });
    return true;
  }

  /** Tells the instance holding an older connection of the branch to close it. */
  async kick(server: string, tenant: string, branch: string, gen: number): Promise<void> {
    await this.engine.send(server, { kind: 'kick', tenant, branch, gen });
  }

  /** Messages from other instances (and this instance's own probes). */
  receive(m: InstanceMessage): void {
    switch (m.kind) {
      case 'entries': {
        // Routed by the publisher's view of the routes; this instance applies its own to the entries.
        const routing = m.receivers === undefined ? null : this.routingOf(m.tenant);
        this.deliverLocal(m, routing && m.entries ? routeEntries(routing, m.entries, m.target) : null);
        return;
      }
      case 'kick': {
        const conn = this.registry.get(m.tenant, m.branch);
        if (conn && conn.gen <= m.gen) conn.close(CLOSE.replaced);
        return;
      }
      case 'conflict':
        // The branch moved or left since the sender looked it up.
        if (!this.registry.get(m.tenant, m.branch)?.send(m.frame)) this.onUndeliveredConflict(m.tenant, m.branch, m.frame);
        return;
      case 'triage':
      case 'triage-reply':
        this.onTriage(m);
        return;
      case 'probe':
        this.onProbe(m.nonce);
        return;
    }
  }

  /** `routed`: entries per receiving branch (routes); null: every connection judges the whole notification. */
  private deliverLocal(msg: EntriesMessage, routed: ReadonlyMap<string, readonly LogEntry[]> | null): void {
    let shared: SharedDeliver | null = null;
    const receivers = msg.receivers === undefined ? null : new Set(msg.receivers);
    for (const conn of this.registry.ofTenant(msg.tenant)) {
      if (msg.entries && !shared) shared = { entries: msg.entries as readonly LogEntry[], encoded: new Map() };
      if (routed) conn.delivery.onEntries(msg, shared, routed.get(conn.branchId) ?? []);
      // Without the entries: a receiver reads the log, anyone else moves past the range.
      else if (receivers) conn.delivery.onEntries(msg, shared, receivers.has(conn.branchId) ? null : []);
      else conn.delivery.onEntries(msg, shared);
    }
  }

  private routingOf(tenant: string): RoutingPolicy | null {
    return this.directory.peek(tenant)?.routing ?? null;
  }
}
