/**
 * Moves notifications of new log entries to the connections that should see them: directly to
 * this instance's connections, and through the engine to instances holding other branches of
 * the tenant. A notification is only a wake-up; connections re-read the log when in doubt.
 */
import type { ConflictNotify, LogEntry } from '../protocol/index.js';
import type { Connection } from './connection.js';
import { CLOSE } from './errors.js';
import type { Engine, EntriesMessage, InstanceMessage } from './engine/types.js';
import type { Logger } from './logger.js';
import type { ConnectionRegistry } from './registry.js';
import { serversToNotify } from './routing.js';
import type { SharedDeliver } from './delivery.js';

export class Fanout {
  /** Called with each pub/sub probe that comes back. */
  onProbe: (nonce: string) => void = () => undefined;
  /** A conflict notice sent here for a branch that is no longer connected here: hold it. */
  onUndeliveredConflict: (tenant: string, branch: string, frame: ConflictNotify) => void = () => undefined;

  constructor(
    private readonly instanceId: string,
    private readonly engine: Engine,
    private readonly registry: ConnectionRegistry<Connection>,
    private readonly logger: Logger,
  ) {}

  /** After an append committed: wake every connection that should receive the entries. */
  async publish(msg: EntriesMessage): Promise<void> {
    this.deliverLocal(msg);
    if (this.engine.kind === 'memory') return;
    try {
      const locations = await this.engine.locate(msg.tenant);
      const servers = serversToNotify(locations, msg.origin, msg.target, this.instanceId);
      await Promise.all(servers.map((s) => this.engine.send(s, msg)));
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
      case 'entries':
        this.deliverLocal(m);
        return;
      case 'kick': {
        const conn = this.registry.get(m.tenant, m.branch);
        if (conn && conn.gen <= m.gen) conn.close(CLOSE.replaced);
        return;
      }
      case 'conflict':
        // The branch moved or left since the sender looked it up.
        if (!this.registry.get(m.tenant, m.branch)?.send(m.frame)) this.onUndeliveredConflict(m.tenant, m.branch, m.frame);
        return;
      case 'probe':
        this.onProbe(m.nonce);
        return;
    }
  }

  private deliverLocal(msg: EntriesMessage): void {
    let shared: SharedDeliver | null = null;
    for (const conn of this.registry.ofTenant(msg.tenant)) {
      if (msg.entries && !shared) shared = { entries: msg.entries as readonly LogEntry[], encoded: new Map() };
      conn.delivery.onEntries(msg, shared);
    }
  }
}
