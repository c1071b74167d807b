/**
 * The live connections of this instance, by tenant and branch. At most one connection per
 * branch: a newer one replaces the older (which is closed with 4009).
 */
import type { HubToAgent } from '../protocol/index.js';
import type { Delivery, DeliveryMode } from './delivery.js';
import type { TenantView } from './directory.js';
import type { CloseCode } from './errors.js';

/** What the registry (and the admin API) needs of a connection. */
export interface RegisteredConnection {
  readonly tenantId: string;
  readonly branchId: string;
  readonly gen: number;
  readonly connectedAt: Date;
  readonly remoteAddress: string;
  readonly codecName: string;
  info(): ConnectionInfo;
}

/**
 * What the rest of the hub (fan-out, control, shutdown) uses of a branch connection. Declared
 * here rather than taken from connection.ts, so that those modules and the context do not
 * import the connection that imports them.
 */
export interface HubConnection extends RegisteredConnection {
  readonly delivery: Delivery;
  readonly alive: boolean;
  send(frame: HubToAgent): boolean;
  close(code: CloseCode): void;
  terminate(): void;
  ping(): void;
  /** Re-checks status (and routing) after a control notification or resync. */
  enforce(view: TenantView | null): void;
  noticeHeld(): void;
  flushed(): Promise<void>;
  flushCursor(): Promise<void>;
}

export interface ConnectionInfo {
  readonly tenantId: string;
  readonly branchId: string;
  readonly instanceId: string;
  readonly connectedAt: string;
  readonly remoteAddress: string;
  readonly codec: string;
  readonly mode: DeliveryMode;
  /** Highest log offset considered for the branch / applied by it / delivered to it. */
  readonly scanned: number;
  readonly applied: number;
  readonly delivered: number;
  readonly bufferedBytes: number;
  /** A snapshot being served: versions read of the tenant's `total`, rows sent, evictions; `resync` when routing changed. */
  readonly snapshot: { readonly total: number; readonly scanned: number; readonly sent: number; readonly evicted: number; readonly resync: boolean } | null;
}

export class ConnectionRegistry<C extends RegisteredConnection = RegisteredConnection> {
  private readonly tenants = new Map<string, Map<string, C>>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Adds `conn`; returns the connection of the same branch it replaces, if any. */
  add(conn: C): C | undefined {
    let branches = this.tenants.get(conn.tenantId);
    if (!branches) this.tenants.set(conn.tenantId, (branches = new Map()));
    const previous = branches.get(conn.branchId);
    branches.set(conn.branchId, conn);
    if (!previous) this.count++;
    return previous;
  }

  /** Removes `conn` if it is still the branch's registered connection. */
  remove(conn: C): boolean {
    const branches = this.tenants.get(conn.tenantId);
    if (branches?.get(conn.branchId) !== conn) return false;
    branches.delete(conn.branchId);
    if (branches.size === 0) this.tenants.delete(conn.tenantId);
    this.count--;
    return true;
  }

  get(tenantId: string, branchId: string): C | undefined {
    return this.tenants.get(tenantId)?.get(branchId);
  }

  ofTenant(tenantId: string): Iterable<C> {
    return this.tenants.get(tenantId)?.values() ?? [];
  }

  tenantIds(): string[] {
    return [...this.tenants.keys()];
  }

  *all(): Iterable<C> {
    for (const branches of this.tenants.values()) yield* branches.values();
  }

  /** Snapshot of every live connection, optionally of one tenant (admin API). */
  list(tenantId?: string): ConnectionInfo[] {
    const conns = tenantId === undefined ? [...this.all()] : [...this.ofTenant(tenantId)];
    return conns.map((c) => c.info());
  }
}
