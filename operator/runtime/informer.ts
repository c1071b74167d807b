/**
 * A cache of one resource type kept current by list + watch. Unlike client-node's informer it
 * never stops for good: any watch error leads to a relist after a capped exponential backoff,
 * a 410 Gone relists at once, and a periodic relist replays every object to the handlers
 * (level-triggered resync) and repairs anything a lost event left stale.
 */
import type { Logger } from 'pino';
import { KubeError, isGone } from '../kube/client.js';
import { resourcePath, type Api, type KubeObject, type ObjectList, type ResourceType } from '../kube/resources.js';
import { backoffDelay, type BackoffPolicy } from '../policy/backoff.js';
import { sleep } from './sleep.js';

export type InformerEventType = 'add' | 'update' | 'delete' | 'resync';

export type InformerHandler<T> = (type: InformerEventType, obj: T, old: T | undefined) => void;

export interface InformerOptions {
  readonly api: Api;
  readonly type: ResourceType;
  /** Watch one namespace; default all. */
  readonly namespace?: string;
  readonly labelSelector?: string;
  /** Relist (and replay every object to the handlers) this often. */
  readonly resyncMs: number;
  readonly backoff: BackoffPolicy;
  /** Server-side timeout of one watch request. */
  readonly watchTimeoutSeconds?: number;
  readonly log: Logger;
  readonly onRestart?: (reason: string) => void;
}

interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: KubeObject & { code?: number; reason?: string; message?: string };
}

export const objectKey = (o: KubeObject): string => `${o.metadata.namespace ?? ''}/${o.metadata.name ?? ''}`;

/** Thrown inside the watch loop to leave it for a relist. */
class Relist extends Error {}

export class Informer<T extends KubeObject> {
  private readonly items = new Map<string, T>();
  private readonly handlers: InformerHandler<T>[] = [];
  private synced = false;
  private failures = 0;
  private running: Promise<void> | undefined;
  private readonly stopper = new AbortController();
  private lastError: string | undefined;

  constructor(private readonly options: InformerOptions) {}

  get kind(): string {
    return this.options.type.kind;
  }

  on(handler: InformerHandler<T>): void {
    this.handlers.push(handler);
  }

  /** Whether a first list has filled the cache. */
  hasSynced(): boolean {
    return this.synced;
  }

  /** The last error of the list/watch loop, cleared by the next successful list. */
  get error(): string | undefined {
    return this.lastError;
  }

  get(namespace: string, name: string): T | undefined {
    return this.items.get(`${namespace}/${name}`);
  }

  list(): T[] {
    return [...this.items.values()];
  }

  start(): void {
    this.running ??= this.loop();
  }

  async stop(): Promise<void> {
    this.stopper.abort();
    await this.running;
  }

  /** Resolves once synced (or rejects after `timeoutMs`). */
  async waitForSync(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.synced) {
      if (Date.now() > deadline) throw new Error(`${this.kind} informer not synced within ${timeoutMs} ms: ${this.lastError ?? 'no answer'}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private emit(type: InformerEventType, obj: T, old?: T): void {
    for (const h of this.handlers) {
      try {
        h(type, obj, old);
      } catch (err) {
        this.options.log.error({ err, kind: this.kind }, 'informer handler failed');
      }
    }
  }

  private async loop(): Promise<void> {
    const signal = this.stopper.signal;
    while (!signal.aborted) {
      try {
        const rv = await this.relist();
        this.failures = 0;
        this.lastError = undefined;
        await this.watch(rv, Date.now() + this.options.resyncMs);
      } catch (err) {
        if (signal.aborted) break;
        if (err instanceof Relist) {
          this.options.onRestart?.('gone');
          continue;
        }
        this.failures++;
        this.lastError = (err as Error).message;
        const delay = backoffDelay(this.options.backoff, this.failures);
        this.options.onRestart?.('error');
        this.options.log.warn({ kind: this.kind, err: this.lastError, retryInMs: delay }, 'list/watch failed; restarting');
        await sleep(delay, signal);
      }
    }
  }

  /** Lists every object (in pages), replaces the cache and tells the handlers what changed. */
  private async relist(): Promise<string> {
    const { api, type, namespace, labelSelector } = this.options;
    const fresh = new Map<string, T>();
    let cont: string | undefined;
    let rv = '';
    do {
      const page: ObjectList<T> = await api.list<T>(type, namespace, { labelSelector, limit: 500, continue: cont });
      for (const item of page.items) {
        // List items carry no apiVersion/kind; later writes and events need them.
        const obj = { apiVersion: type.group ? `${type.group}/${type.version}` : type.version, kind: type.kind, ...item } as T;
        fresh.set(objectKey(obj), obj);
      }
      cont = page.metadata.continue || undefined;
      rv = page.metadata.resourceVersion ?? '';
    } while (cont);
    const old = new Map(this.items);
    this.items.clear();
    for (const [k, v] of fresh) this.items.set(k, v);
    this.synced = true;
    for (const [k, obj] of fresh) {
      const prev = old.get(k);
      if (!prev) this.emit('add', obj);
      else if (prev.metadata.resourceVersion !== obj.metadata.resourceVersion) this.emit('update', obj, prev);
      else this.emit('resync', obj, prev);
    }
    for (const [k, obj] of old) if (!fresh.has(k)) this.emit('delete', obj);
    return rv;
  }

  /** Watches from `rv` until `until`, re-opening the watch whenever the server ends it. */
  private async watch(rv: string, until: number): Promise<void> {
    const { api, type, namespace, labelSelector } = this.options;
    const signal = this.stopper.signal;
    let resourceVersion = rv;
    while (!signal.aborted && Date.now() < until) {
      const seconds = Math.max(1, Math.min(this.options.watchTimeoutSeconds ?? 300, Math.ceil((until - Date.now()) / 1000)));
      // The server ends the watch after `seconds`; the client gives up a little later in case it never does.
      const lifetime = AbortSignal.timeout(seconds * 1000 + 15_000);
      try {
        await api.client.stream(
          {
            path: resourcePath(type, namespace),
            query: { watch: 1, resourceVersion, allowWatchBookmarks: true, timeoutSeconds: seconds, labelSelector },
            signal: AbortSignal.any([signal, lifetime]),
          },
          (raw) => {
            const ev = raw as WatchEvent;
            if (ev.type === 'ERROR') {
              const code = ev.object.code ?? 0;
              if (code === 410) throw new Relist(ev.object.message ?? 'resource version too old');
              throw new KubeError(code, ev.object.reason ?? 'WatchError', `watch ${type.plural}: ${ev.object.message ?? 'error'}`);
            }
            const v = ev.object.metadata?.resourceVersion;
            if (v) resourceVersion = v;
            if (ev.type === 'BOOKMARK') return;
            const obj = { apiVersion: type.group ? `${type.group}/${type.version}` : type.version, kind: type.kind, ...ev.object } as unknown as T;
            const key = objectKey(obj);
            const prev = this.items.get(key);
            if (ev.type === 'DELETED') {
              this.items.delete(key);
              this.emit('delete', obj);
            } else {
              this.items.set(key, obj);
              this.emit(prev ? 'update' : 'add', obj, prev);
            }
          },
        );
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof Relist || isGone(err)) throw new Relist('gone');
        if (lifetime.aborted) continue; // our own deadline: just watch again
        throw err;
      }
    }
  }
}
