/**
 * Connections to the hub databases, one HubStore per database URL. The URL is read live from
 * the Secret a Hub names on every use (never from a cache), so a rotated password or moved
 * database is picked up at the next reconcile.
 */
import type { V1Secret } from '@kubernetes/client-node';
import { HubStore, createPool, type HubStoreOptions, type MigrationReport } from '../hub/store/index.js';
import { Reason } from './api/reasons.js';
import type { Hub } from './api/v1alpha1.js';
import { SECRETS, type Api } from './kube/resources.js';
import { ReconcileFailure, toFailure } from './reconcile/errors.js';
import { secretValue } from './render/credentials.js';

interface Entry {
  readonly store: HubStore;
  readonly hubs: Set<string>;
  migration: Promise<MigrationReport> | undefined;
}

const hubKey = (hub: Hub): string => `${hub.metadata.namespace}/${hub.metadata.name}`;

export class HubStores {
  private readonly byUrl = new Map<string, Entry>();
  private readonly urlOfHub = new Map<string, string>();

  constructor(
    private readonly api: Api,
    private readonly options: { readonly store?: HubStoreOptions; readonly poolMax?: number } = {},
  ) {}

  /** DATABASE_URL from the Hub's Secret, read live. */
  async databaseUrl(hub: Hub): Promise<string> {
    const ref = hub.spec.database.secretRef;
    const secret = await this.api.find<V1Secret & { metadata: object }>(SECRETS, hub.metadata.namespace ?? '', ref.name);
    if (!secret) throw new ReconcileFailure(Reason.SecretNotFound, `Secret ${ref.name} (spec.database.secretRef) not found`);
    const url = secretValue(secret, ref.key);
    if (!url) throw new ReconcileFailure(Reason.SecretNotFound, `Secret ${ref.name} has no key ${ref.key} (spec.database.secretRef)`);
    return url;
  }

  /**
   * The store of the Hub's database. With `orLast`, a Hub whose Secret is gone (deleted with
   * it, say, by Argo CD) still gets the connection it had, so finalizers can clean up.
   */
  async forHub(hub: Hub, options: { orLast?: boolean } = {}): Promise<HubStore> {
    return (await this.entry(hub, options.orLast === true)).store;
  }

  private async entry(hub: Hub, orLast: boolean): Promise<Entry> {
    const key = hubKey(hub);
    let url: string;
    try {
      url = await this.databaseUrl(hub);
    } catch (err) {
      const last = this.urlOfHub.get(key);
      const entry = last === undefined ? undefined : this.byUrl.get(last);
      if (orLast && entry) return entry;
      throw err;
    }
    const previous = this.urlOfHub.get(key);
    if (previous !== undefined && previous !== url) await this.detach(key, previous);
    let entry = this.byUrl.get(url);
    if (!entry) {
      const pool = createPool(url, { max: this.options.poolMax ?? 4, applicationName: 'hub-broker-operator' });
      entry = { store: new HubStore(pool, { source: 'operator', ...this.options.store }), hubs: new Set(), migration: undefined };
      this.byUrl.set(url, entry);
    }
    entry.hubs.add(key);
    this.urlOfHub.set(key, url);
    return entry;
  }

  /**
   * Migrates the Hub's database once per connection pool (a new operator version brings new
   * migrations with a new process); a failed migration is retried on the next call.
   */
  async migrate(hub: Hub): Promise<{ store: HubStore; report: MigrationReport; fresh: boolean }> {
    const entry = await this.entry(hub, false);
    const fresh = entry.migration === undefined;
    entry.migration ??= entry.store.migrate();
    try {
      return { store: entry.store, report: await entry.migration, fresh };
    } catch (err) {
      entry.migration = undefined;
      const failure = toFailure(err);
      if (failure.reason === Reason.DatabaseUnavailable) throw failure;
      throw new ReconcileFailure(Reason.MigrationFailed, `migrating the hub database: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Forgets a deleted Hub; its pool closes when no other Hub uses the database. */
  async release(hub: Hub): Promise<void> {
    const key = hubKey(hub);
    const url = this.urlOfHub.get(key);
    if (url !== undefined) await this.detach(key, url);
  }

  private async detach(key: string, url: string): Promise<void> {
    this.urlOfHub.delete(key);
    const entry = this.byUrl.get(url);
    if (!entry) return;
    entry.hubs.delete(key);
    if (entry.hubs.size === 0) {
      this.byUrl.delete(url);
      await entry.store.pool.end().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    const entries = [...this.byUrl.values()];
    this.byUrl.clear();
    this.urlOfHub.clear();
    await Promise.all(entries.map((e) => e.store.pool.end().catch(() => undefined)));
  }
}
