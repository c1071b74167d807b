/**
 * Listens on the store's control channel (PostgreSQL NOTIFY), so a suspension or deletion made
 * by the admin API of any instance, or by the operator, reaches this instance within seconds.
 * A lost connection is re-established with backoff and followed by a full resync.
 */
import pg from 'pg';
import { CONTROL_CHANNEL, parseControlEvent, type ControlEvent } from './store/index.js';
import type { Logger } from './logger.js';

export class ControlListener {
  private client: pg.Client | undefined;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private attempt = 0;

  constructor(
    private readonly databaseUrl: string,
    private readonly onEvent: (e: ControlEvent) => void,
    /** After a reconnect: notifications may have been missed. */
    private readonly onResync: () => void,
    private readonly logger: Logger,
  ) {}

  get connected(): boolean {
    return this.client !== undefined;
  }

  async start(): Promise<void> {
    await this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const c = this.client;
    this.client = undefined;
    await c?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.databaseUrl, application_name: 'hub-broker:control' });
    client.on('error', (err) => {
      this.logger.warn({ err: err.message }, 'control channel connection lost');
      this.lost(client);
    });
    client.on('end', () => this.lost(client));
    client.on('notification', (n) => {
      const e = parseControlEvent(n.payload);
      if (e) this.onEvent(e);
    });
    await client.connect();
    await client.query(`LISTEN ${CONTROL_CHANNEL}`);
    if (this.stopped) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.attempt = 0;
  }

  private lost(client: pg.Client): void {
    if (this.client !== client || this.stopped) return;
    this.client = undefined;
    client.end().catch(() => undefined);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.retryTimer) return;
    const delay = Math.min(30_000, 500 * 2 ** this.attempt++);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.connect().then(
        () => this.onResync(),
        (err: unknown) => {
          this.logger.warn({ err: (err as Error).message }, 'control channel reconnect failed');
          this.scheduleReconnect();
        },
      );
    }, delay);
    this.retryTimer.unref();
  }
}
